#include "meshd/common/prefix.hpp"

#include <charconv>
#include <optional>

namespace meshd {
namespace {

bool bit_set(const std::array<std::uint8_t, 16>& a, int i) {
  return (a[i / 8] >> (7 - i % 8)) & 1;
}

void mask_host_bits(Prefix& p) {
  for (int i = p.len; i < 128; ++i)
    p.addr[i / 8] &= static_cast<std::uint8_t>(~(1u << (7 - i % 8)));
}

std::optional<unsigned> parse_uint(std::string_view s, int base, unsigned max) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc{} || ptr != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

bool parse_v4(std::string_view s, std::uint8_t* out) {
  for (int i = 0; i < 4; ++i) {
    auto dot = s.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) return false;
    auto part = s.substr(0, dot);
    if (part.size() > 1 && part[0] == '0') return false;  // no octal ambiguity
    auto v = parse_uint(part, 10, 255);
    if (!v) return false;
    out[i] = static_cast<std::uint8_t>(*v);
    s = i < 3 ? s.substr(dot + 1) : std::string_view{};
  }
  return true;
}

// RFC 4291 text forms, including "::" compression and a trailing embedded IPv4.
bool parse_v6(std::string_view s, std::array<std::uint8_t, 16>& out) {
  std::array<std::uint16_t, 8> groups{};
  int n = 0, gap = -1;
  if (s.starts_with("::")) {
    gap = 0;
    s.remove_prefix(2);
    if (s.empty()) {
      out.fill(0);
      return true;
    }
  }
  while (!s.empty()) {
    if (n == 8) return false;
    auto colon = s.find(':');
    auto part = s.substr(0, colon);
    if (part.find('.') != std::string_view::npos) {  // embedded IPv4 must be last
      if (colon != std::string_view::npos || n > 6) return false;
      std::uint8_t v4[4];
      if (!parse_v4(part, v4)) return false;
      groups[n++] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      groups[n++] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      break;
    }
    auto v = parse_uint(part, 16, 0xffff);
    if (!v || part.size() > 4) return false;
    groups[n++] = static_cast<std::uint16_t>(*v);
    if (colon == std::string_view::npos) break;
    s.remove_prefix(colon + 1);
    if (s.starts_with(":")) {
      if (gap >= 0) return false;  // at most one "::"
      gap = n;
      s.remove_prefix(1);
    } else if (s.empty()) {
      return false;  // trailing single colon
    }
  }
  if (gap < 0 && n != 8) return false;
  if (gap >= 0 && n == 8) return false;
  std::array<std::uint16_t, 8> full{};
  if (gap < 0) {
    full = groups;
  } else {
    int tail = n - gap;
    for (int i = 0; i < gap; ++i) full[i] = groups[i];
    for (int i = 0; i < tail; ++i) full[8 - tail + i] = groups[gap + i];
  }
  for (int i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<std::uint8_t>(full[i] >> 8);
    out[2 * i + 1] = static_cast<std::uint8_t>(full[i] & 0xff);
  }
  return true;
}

Result<Prefix> parse_impl(std::string_view text, bool masking) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text.empty()) return fail("bad_prefix", "empty string is not an IP address or CIDR");
  auto slash = text.find('/');
  auto addr_part = text.substr(0, slash);
  Prefix p;
  if (addr_part.find(':') != std::string_view::npos) {
    p.family = Family::v6;
    if (!parse_v6(addr_part, p.addr))
      return fail("bad_prefix", quoted + " is not a valid IPv6 address");
  } else {
    p.family = Family::v4;
    if (!parse_v4(addr_part, p.addr.data()))
      return fail("bad_prefix", quoted + " is not a valid IPv4 address");
  }
  p.len = static_cast<std::uint8_t>(p.max_len());
  if (slash != std::string_view::npos) {
    auto len = parse_uint(text.substr(slash + 1), 10, static_cast<unsigned>(p.max_len()));
    if (!len)
      return fail("bad_prefix",
                  quoted + ": prefix length must be 0.." + std::to_string(p.max_len()));
    p.len = static_cast<std::uint8_t>(*len);
  }
  Prefix masked = p;
  mask_host_bits(masked);
  if (!masking && masked != p)
    return fail("bad_prefix", quoted + " has host bits set; the network is " + masked.to_string());
  return masked;
}

}  // namespace

Result<Prefix> Prefix::parse(std::string_view text) {
  return parse_impl(text, false);
}
Result<Prefix> Prefix::parse_masking(std::string_view text) {
  return parse_impl(text, true);
}

Prefix Prefix::v4(std::uint32_t a, std::uint8_t len) {
  Prefix p;
  p.family = Family::v4;
  p.len = len > 32 ? 32 : len;
  for (int i = 0; i < 4; ++i) p.addr[i] = static_cast<std::uint8_t>(a >> (24 - 8 * i));
  mask_host_bits(p);
  return p;
}

bool Prefix::contains(const Prefix& other) const {
  if (family != other.family || other.len < len) return false;
  int full = len / 8;
  for (int i = 0; i < full; ++i)
    if (addr[i] != other.addr[i]) return false;
  for (int i = full * 8; i < len; ++i)
    if (bit_set(addr, i) != bit_set(other.addr, i)) return false;
  return true;
}

std::string Prefix::to_string() const {
  std::string out;
  if (family == Family::v4) {
    for (int i = 0; i < 4; ++i) out += (i ? "." : "") + std::to_string(addr[i]);
  } else {
    // Longest run of zero groups (length >= 2) becomes "::" (RFC 5952).
    std::array<unsigned, 8> g{};
    for (int i = 0; i < 8; ++i) g[i] = static_cast<unsigned>(addr[2 * i] << 8 | addr[2 * i + 1]);
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
      int j = i;
      while (j < 8 && g[j] == 0) ++j;
      if (j - i > best_len) best = i, best_len = j - i;
      i = j == i ? i + 1 : j;
    }
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; ++i) {
      if (i == best) {
        out += "::";
        i += best_len - 1;
        continue;
      }
      if (!out.empty() && out.back() != ':') out += ':';
      std::string h;
      unsigned v = g[i];
      do {
        h.insert(h.begin(), hex[v & 0xf]);
        v >>= 4;
      } while (v);
      out += h;
    }
  }
  if (!is_host()) out += "/" + std::to_string(len);
  return out;
}

std::size_t PrefixHash::operator()(const Prefix& p) const noexcept {
  std::size_t h = 1469598103934665603ull;  // FNV-1a: cheap and good enough for a hash map key
  auto mix = [&h](std::uint8_t b) { h = (h ^ b) * 1099511628211ull; };
  mix(static_cast<std::uint8_t>(p.family));
  mix(p.len);
  for (auto b : p.addr) mix(b);
  return h;
}

}  // namespace meshd
