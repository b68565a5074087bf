# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The receive side of an AF_PACKET TPACKET_V3 ring, turned into pcapng Enhanced Packet Blocks.

The kernel fills blocks of the ring shared with us (mmap'ed by ringcap.py); `RingReader.read` waits
for the next full (or timed-out) block with the GIL released, copies each packet's first `snaplen`
bytes into an EPB exactly as dumpcap would write it (microsecond timestamps, interface 0, an
802.1Q tag the kernel took off put back in the frame) and hands the block back to the kernel.
Everything downstream (block splitting, the fast reader, evidence files) is the dumpcap path's."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING


cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    enum:
        POLLIN
        POLLERR
        POLLHUP
        POLLNVAL


cdef extern from "<linux/if_packet.h>":
    struct tpacket_hdr_v1:
        uint32_t block_status
        uint32_t num_pkts
        uint32_t offset_to_first_pkt
        uint32_t blk_len
    union tpacket_bd_header_u:
        tpacket_hdr_v1 bh1
    struct tpacket_block_desc:
        uint32_t version
        uint32_t offset_to_priv
        tpacket_bd_header_u hdr
    struct tpacket_hdr_variant1:
        uint32_t tp_rxhash
        uint32_t tp_vlan_tci
        uint16_t tp_vlan_tpid
    struct tpacket3_hdr:
        uint32_t tp_next_offset
        uint32_t tp_sec
        uint32_t tp_nsec
        uint32_t tp_snaplen
        uint32_t tp_len
        uint32_t tp_status
        uint16_t tp_mac
        uint16_t tp_net
        tpacket_hdr_variant1 hv1
    struct sockaddr_ll:
        unsigned char sll_pkttype
    enum:
        TP_STATUS_KERNEL
        TP_STATUS_USER
        TP_STATUS_VLAN_VALID
        TP_STATUS_VLAN_TPID_VALID
        PACKET_OUTGOING


cdef extern from *:
    """
    /* The kernel sets a block's status to TP_STATUS_USER after writing its packets (smp_wmb);
       reading it with acquire order makes those writes visible, and handing the block back with
       release order keeps our reads of it before the kernel's next writes (libpcap does the same;
       it matters on arm64). */
    static inline uint32_t rw_status_acquire(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void rw_status_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    """
    uint32_t rw_status_acquire(uint32_t *p) nogil
    void rw_status_release(uint32_t *p, uint32_t v) nogil


cdef uint32_t EPB = 6
cdef uint32_t EPB_FIXED = 32                 # block header, interface, timestamps, lengths, trailer
cdef size_t SLL_OFFSET = (sizeof(tpacket3_hdr) + 15) & ~(<size_t>15)    # TPACKET_ALIGN


cdef inline void put32(uint8_t *p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)


cdef class RingReader:
    """Walks the ring at `address` (block_nr blocks of block_size bytes) shared with socket `fd`."""
    cdef uint8_t *base
    cdef object keep                # the mmap: alive as long as we read it
    cdef size_t block_size
    cdef unsigned int block_nr, current, snaplen
    cdef int fd
    cdef bint skip_outgoing
    cdef public unsigned long long packets      # packets handed on (after skipping loopback's copies)
    cdef public unsigned long long skipped
    cdef public int error_events                # poll() said the socket failed (interface gone)

    def __cinit__(self, ring, int fd, size_t block_size, unsigned int block_nr, unsigned int snaplen,
                  bint skip_outgoing):
        cdef uint8_t[::1] view = ring
        self.base = &view[0]
        self.keep = ring
        self.fd = fd
        self.block_size = block_size
        self.block_nr = block_nr
        self.snaplen = snaplen
        self.skip_outgoing = skip_outgoing
        self.current = 0
        self.packets = 0
        self.skipped = 0
        self.error_events = 0

    cdef inline tpacket_block_desc *_block(self, unsigned int i) noexcept nogil:
        return <tpacket_block_desc *>(self.base + <size_t>i * self.block_size)

    cdef inline bint _ready(self, tpacket_block_desc *blk) noexcept nogil:
        return (rw_status_acquire(&blk.hdr.bh1.block_status) & TP_STATUS_USER) != 0

    def close(self):
        """Stop reading (the ring is about to be unmapped): every later read returns None."""
        self.base = NULL
        self.keep = None

    def read(self, int timeout_ms, size_t max_bytes=1 << 22):
        """pcapng EPBs of every packet in the blocks ready now (waiting up to `timeout_ms` for the
        first), at most about `max_bytes` of them; None when no block was ready (b"" when the
        blocks held only packets that are skipped)."""
        if self.base == NULL:
            return None
        cdef tpacket_block_desc *blk = self._block(self.current)
        cdef pollfd pfd
        cdef int got
        if not self._ready(blk):
            pfd.fd = self.fd
            pfd.events = POLLIN | POLLERR
            pfd.revents = 0
            with nogil:
                got = poll(&pfd, 1, timeout_ms)
            if got > 0 and (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) and not (pfd.revents & POLLIN):
                self.error_events += 1
            if self.base == NULL or not self._ready(blk):       # closed meanwhile, or nothing came
                return None
        # First the size of what the ready blocks make (so the bytes are made once, at their
        # size), then the blocks themselves.
        cdef unsigned int blocks = 0, b = self.current
        cdef size_t total = 0
        while self._ready(blk) and total < max_bytes and blocks < self.block_nr:
            total += self._block_bytes(blk)
            blocks += 1
            b = (b + 1) % self.block_nr
            blk = self._block(b)
        out = PyBytes_FromStringAndSize(NULL, total)
        cdef uint8_t *dst = <uint8_t *>PyBytes_AS_STRING(out)
        cdef uint8_t *end = dst + total
        cdef unsigned int k
        for k in range(blocks):
            blk = self._block(self.current)
            dst = self._write_block(blk, dst, end)
            rw_status_release(&blk.hdr.bh1.block_status, TP_STATUS_KERNEL)   # the kernel may fill it again
            self.current = (self.current + 1) % self.block_nr
        if dst != end:          # cannot happen with the block read whole: never hand out a torn tail
            return out[:dst - <uint8_t *>PyBytes_AS_STRING(out)]
        return out

    cdef inline bint _kept(self, tpacket3_hdr *pkt) noexcept nogil:
        cdef sockaddr_ll *sll = <sockaddr_ll *>(<uint8_t *>pkt + SLL_OFFSET)
        return not (self.skip_outgoing and sll.sll_pkttype == PACKET_OUTGOING)

    cdef inline size_t _cap_len(self, tpacket3_hdr *pkt) noexcept nogil:
        cdef size_t n = pkt.tp_snaplen
        if (pkt.tp_status & TP_STATUS_VLAN_VALID) and pkt.tp_snaplen >= 12:
            n += 4
        return n if n < self.snaplen else self.snaplen

    cdef size_t _block_bytes(self, tpacket_block_desc *blk) noexcept nogil:
        cdef tpacket3_hdr *pkt = <tpacket3_hdr *>(<uint8_t *>blk + blk.hdr.bh1.offset_to_first_pkt)
        cdef size_t total = 0
        cdef uint32_t i
        for i in range(blk.hdr.bh1.num_pkts):
            if self._kept(pkt):
                total += EPB_FIXED + ((self._cap_len(pkt) + 3) & ~(<size_t>3))
            pkt = <tpacket3_hdr *>(<uint8_t *>pkt + pkt.tp_next_offset)
        return total

    cdef uint8_t *_write_block(self, tpacket_block_desc *blk, uint8_t *dst, uint8_t *end) noexcept nogil:
        cdef tpacket3_hdr *pkt = <tpacket3_hdr *>(<uint8_t *>blk + blk.hdr.bh1.offset_to_first_pkt)
        cdef size_t cap_len, orig_len, padded
        cdef uint32_t i, status, tpid
        cdef uint64_t usec
        cdef uint8_t *frame
        cdef bint vlan
        for i in range(blk.hdr.bh1.num_pkts):
            if not self._kept(pkt):
                self.skipped += 1           # loopback: the same packet comes again as incoming
            else:
                status = pkt.tp_status
                vlan = (status & TP_STATUS_VLAN_VALID) != 0 and pkt.tp_snaplen >= 12
                cap_len = self._cap_len(pkt)
                orig_len = pkt.tp_len + (4 if vlan else 0)
                padded = (cap_len + 3) & ~(<size_t>3)
                if dst + EPB_FIXED + padded > end:      # more than the size pass counted: stop here
                    break
                usec = <uint64_t>pkt.tp_sec * 1000000 + pkt.tp_nsec // 1000
                put32(dst, EPB)
                put32(dst + 4, <uint32_t>(EPB_FIXED + padded))
                put32(dst + 8, 0)
                put32(dst + 12, <uint32_t>(usec >> 32))
                put32(dst + 16, <uint32_t>usec)       # the low half
                put32(dst + 20, <uint32_t>cap_len)
                put32(dst + 24, <uint32_t>orig_len)
                frame = <uint8_t *>pkt + pkt.tp_mac
                if vlan:            # the kernel moved the 802.1Q tag out of the frame: put it back
                    tpid = pkt.hv1.tp_vlan_tpid if (status & TP_STATUS_VLAN_TPID_VALID) else 0x8100
                    memcpy(dst + 28, frame, 12)
                    dst[40] = <uint8_t>(tpid >> 8)
                    dst[41] = <uint8_t>tpid
                    dst[42] = <uint8_t>(pkt.hv1.tp_vlan_tci >> 8)
                    dst[43] = <uint8_t>pkt.hv1.tp_vlan_tci
                    if cap_len > 16:
                        memcpy(dst + 44, frame + 12, cap_len - 16)
                else:
                    memcpy(dst + 28, frame, cap_len)
                if padded > cap_len:
                    memset(dst + 28 + cap_len, 0, padded - cap_len)
                put32(dst + 28 + padded, <uint32_t>(EPB_FIXED + padded))
                dst += EPB_FIXED + padded
                self.packets += 1
            pkt = <tpacket3_hdr *>(<uint8_t *>pkt + pkt.tp_next_offset)
        return dst
