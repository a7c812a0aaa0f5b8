// Packet fixtures for BPF_PROG_TEST_RUN tables (Katran style): small builders producing
// Ethernet frames with optional VLAN tags, IPv4/IPv6 headers and a TCP header. Checksums
// are not computed: the programs under test never look at them.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <vector>

namespace meshd::test {

using Bytes = std::vector<std::uint8_t>;

inline void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

inline void put_addr4(Bytes& b, const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  const auto* p = reinterpret_cast<const std::uint8_t*>(&a);
  b.insert(b.end(), p, p + 4);
}

inline void put_addr6(Bytes& b, const char* text) {
  in6_addr a{};
  inet_pton(AF_INET6, text, &a);
  b.insert(b.end(), a.s6_addr, a.s6_addr + 16);
}

struct FrameSpec {
  std::vector<std::uint16_t> vlan_tpids;  // outermost first, e.g. {0x8100}
  std::uint16_t ethertype = 0x0800;
};

inline Bytes ethernet(const FrameSpec& spec) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};  // dst, src MAC
  for (std::size_t i = 0; i < spec.vlan_tpids.size(); ++i) {
    put16(b, spec.vlan_tpids[i]);
    // TCI of this tag; the next field is the following TPID or the ethertype.
    put16(b, static_cast<std::uint16_t>(100 + i));
  }
  put16(b, spec.ethertype);
  return b;
}

inline void put_tcp(Bytes& b) {
  put16(b, 40000);                             // source port
  put16(b, 443);                               // destination port
  for (int i = 0; i < 8; ++i) b.push_back(0);  // seq, ack
  b.push_back(0x50);                           // data offset 5
  b.push_back(0x02);                           // SYN
  put16(b, 65535);                             // window
  for (int i = 0; i < 4; ++i) b.push_back(0);  // checksum, urgent
}

// Ethernet (+ tags) + IPv4 + TCP SYN from `src` to `dst`.
inline Bytes ipv4_tcp(const char* src, const char* dst, FrameSpec spec = {}) {
  spec.ethertype = 0x0800;
  Bytes b = ethernet(spec);
  b.push_back(0x45);  // version 4, IHL 5
  b.push_back(0);
  put16(b, 40);      // total length
  put16(b, 1);       // id
  put16(b, 0x4000);  // DF
  b.push_back(64);   // TTL
  b.push_back(6);    // TCP
  put16(b, 0);       // checksum
  put_addr4(b, src);
  put_addr4(b, dst);
  put_tcp(b);
  return b;
}

// Ethernet (+ tags) + IPv6 + TCP SYN.
inline Bytes ipv6_tcp(const char* src, const char* dst, FrameSpec spec = {}) {
  spec.ethertype = 0x86dd;
  Bytes b = ethernet(spec);
  b.push_back(0x60);
  b.push_back(0);
  put16(b, 0);
  put16(b, 20);  // payload length
  b.push_back(6);
  b.push_back(64);
  put_addr6(b, src);
  put_addr6(b, dst);
  put_tcp(b);
  return b;
}

inline Bytes truncated(Bytes b, std::size_t size) {
  b.resize(size);
  return b;
}

}  // namespace meshd::test
