#include "meshd/net/seeds.hpp"

#include <charconv>

namespace meshd::net {
namespace {

Result<std::uint16_t> parse_port(std::string_view entry, std::string_view port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return fail("bad_seed", "seed '" + std::string(entry) + "': port '" + std::string(port) +
                                "' is not a number in 1..65535");
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<Seed> parse_seed(std::string_view text) {
  Seed seed;
  seed.text = std::string(text);
  std::string_view rest = text;
  if (rest.starts_with("dns:")) {
    seed.kind = Seed::Kind::dns;
    rest.remove_prefix(4);
  }
  std::string_view host;
  std::string_view port;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return fail("bad_seed", "seed '" + seed.text + "': '[' without a closing ']'");
    }
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (!rest.starts_with(':')) {
      return fail("bad_seed", "seed '" + seed.text + "': expected ':PORT' after ']'");
    }
    port = rest.substr(1);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return fail("bad_seed", "seed '" + seed.text + "': missing ':PORT' (expected " +
                                  (seed.kind == Seed::Kind::dns ? "dns:NAME:PORT" : "host:port") +
                                  ")");
    }
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail("bad_seed",
                  "seed '" + seed.text + "': an IPv6 address must be written as [addr]:port");
    }
  }
  if (host.empty()) return fail("bad_seed", "seed '" + seed.text + "': empty host name");
  auto p = parse_port(text, port);
  if (!p) return std::unexpected(p.error());
  seed.host = std::string(host);
  seed.port = *p;
  return seed;
}

}  // namespace meshd::net
