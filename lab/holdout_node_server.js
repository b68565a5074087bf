// A Node.js `http` server for the holdout lab, configured the ways Node services commonly are.
// Usage: node holdout_node_server.js PORT MODE [ARG]
//   keepalive MS     server.keepAliveTimeout = MS (Node's default is 5000)
//   body-limit BYTES answer 413 with "Connection: close" when Content-Length > BYTES, without reading the body
//   slow-headers MS  headersTimeout = requestTimeout = MS, checked every 200 ms (Node answers 408 and closes)
//   stream MS        an event stream: one line every MS milliseconds until the client goes away
'use strict';
const http = require('http');

const [port, mode, arg] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4] || 0)];
const page = '<html><body>hello from node</body></html>\n'.repeat(20);

const options = {};
if (mode === 'slow-headers') {
  Object.assign(options, { headersTimeout: arg, requestTimeout: arg, connectionsCheckingInterval: 200 });
}

const server = http.createServer(options, (req, res) => {
  if (mode === 'body-limit' && Number(req.headers['content-length'] || 0) > arg) {
    // The usual early rejection: answer before the body is read and ask for the connection to close.
    res.writeHead(413, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('payload too large\n');
    return;
  }
  if (mode === 'stream') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    let n = 0;
    const timer = setInterval(() => res.write(`data: tick ${n++}\n\n`), arg);
    res.on('close', () => clearInterval(timer));
    return;
  }
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(page) });
    res.end(page);
  });
});
if (mode === 'keepalive') server.keepAliveTimeout = arg;
// No 'clientError' handler: Node's default answers 408/400 and destroys the socket, as most services leave it.
server.listen(port, '0.0.0.0', () => console.error(`listening on ${port} (${mode} ${arg})`));
