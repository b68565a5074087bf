// Node's http client with a keep-alive agent, as services calling other services use it.
// Usage: node holdout_node_client.js URL PAUSE_MS [ROUNDS]
// GET, wait PAUSE_MS, GET again on the pooled connection; prints {"result": {"requests": [...]}}.
'use strict';
const http = require('http');

const [url, pause, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 2)];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get() {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
    });
    req.on('error', (err) => resolve(`${err.name}: ${err.code || err.message}`));
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

(async () => {
  const out = [];
  for (let n = 0; n < rounds; n++) {
    if (n) await new Promise((r) => setTimeout(r, pause));
    out.push(await get());
  }
  console.log(JSON.stringify({ result: { requests: out } }));
  agent.destroy();
})();
