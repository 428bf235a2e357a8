/*
 * vsock_packet.c — the virtio-vsock packet header (44 bytes, little-endian) and the checks a
 * packet from the guest must pass before anything acts on it.
 */
#include <stdio.h>
#include <string.h>

#include "vsock.h"

static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

void bh_vsock_hdr_decode(const uint8_t raw[BH_VSOCK_HDR_SIZE], bh_vsock_hdr *h)
{
    h->src_cid = le64(raw);
    h->dst_cid = le64(raw + 8);
    h->src_port = le32(raw + 16);
    h->dst_port = le32(raw + 20);
    h->len = le32(raw + 24);
    h->type = le16(raw + 28);
    h->op = le16(raw + 30);
    h->flags = le32(raw + 32);
    h->buf_alloc = le32(raw + 36);
    h->fwd_cnt = le32(raw + 40);
}

void bh_vsock_hdr_encode(const bh_vsock_hdr *h, uint8_t raw[BH_VSOCK_HDR_SIZE])
{
    memcpy(raw, &h->src_cid, 8);
    memcpy(raw + 8, &h->dst_cid, 8);
    memcpy(raw + 16, &h->src_port, 4);
    memcpy(raw + 20, &h->dst_port, 4);
    memcpy(raw + 24, &h->len, 4);
    memcpy(raw + 28, &h->type, 2);
    memcpy(raw + 30, &h->op, 2);
    memcpy(raw + 32, &h->flags, 4);
    memcpy(raw + 36, &h->buf_alloc, 4);
    memcpy(raw + 40, &h->fwd_cnt, 4);
}

bool bh_vsock_parse_tx(const bh_vq_chain *c, bh_vsock_hdr *h, char *why, size_t why_len)
{
    if (c->read_len < BH_VSOCK_HDR_SIZE) {
        snprintf(why, why_len, "vsock packet of %llu readable bytes, shorter than its 44-byte header",
                 (unsigned long long)c->read_len);
        return false;
    }
    uint8_t raw[BH_VSOCK_HDR_SIZE];
    bh_iov_copy_from(c->read, c->nread, 0, raw, sizeof raw); /* one snapshot */
    bh_vsock_hdr_decode(raw, h);
    if (h->len > BH_VSOCK_MAX_PAYLOAD) {
        snprintf(why, why_len, "vsock packet payload of %u bytes (at most %u)", h->len, BH_VSOCK_MAX_PAYLOAD);
        return false;
    }
    if ((uint64_t)h->len > c->read_len - BH_VSOCK_HDR_SIZE) {
        snprintf(why, why_len, "vsock packet says %u payload bytes but its buffers hold %llu", h->len,
                 (unsigned long long)(c->read_len - BH_VSOCK_HDR_SIZE));
        return false;
    }
    if (h->op != BH_VSOCK_OP_RW && h->len != 0) {
        snprintf(why, why_len, "vsock control packet (op %u) with a %u-byte payload", h->op, h->len);
        return false;
    }
    return true;
}
