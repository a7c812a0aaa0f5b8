#include "sensor/detectors/falco.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

namespace meshd::sensor {
namespace {

// An untrusted value quoted for an error message: one line (control characters, quotes and
// backslashes escaped as \xNN / \' / \\) and at most 64 bytes of it, so an alert cannot
// inject lines into the log or flood it through its error.
std::string quote_untrusted(std::string_view value) {
  static constexpr std::size_t kMax = 64;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < value.size() && i < kMax; ++i) {
    const auto ch = static_cast<unsigned char>(value[i]);
    if (ch == '\\' || ch == '\'') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      out += "\\x";
      out += kHex[ch >> 4];
      out += kHex[ch & 15];
    } else {
      out += static_cast<char>(ch);
    }
  }
  if (value.size() > kMax) out += "...";
  return out + "'";
}

using json = nlohmann::json;

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Falco prints "<NA>" (or nothing) for fields without a value.
bool absent(const json& v) {
  if (v.is_null()) return true;
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    return s.empty() || s == "<NA>" || s == "NA";
  }
  return false;
}

std::optional<std::string> field_string(const json& fields, const char* key) {
  auto it = fields.find(key);
  if (it == fields.end() || absent(*it)) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer() || it->is_number_unsigned())
    return std::to_string(it->get<std::int64_t>());
  return it->dump();
}

std::optional<std::uint64_t> field_uint(const json& fields, const char* key) {
  auto it = fields.find(key);
  if (it == fields.end() || absent(*it)) return std::nullopt;
  if (it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() >= 0))
    return it->get<std::uint64_t>();
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc{} && p == s.data() + s.size()) return v;
  }
  return std::nullopt;
}

// An address usable as a block target: a parseable, specified host address. IPv4-mapped
// IPv6 addresses ("::ffff:1.2.3.4") are reported as the IPv4 address they carry.
std::optional<Prefix> usable_address(std::string_view text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  auto p = Prefix::parse(text);
  if (!p || !p->is_host()) return std::nullopt;
  if (p->family == Family::v6) {
    static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(mapped, mapped + 12, p->addr.begin()))
      return Prefix::v4(static_cast<std::uint32_t>(p->addr[12]) << 24 | p->addr[13] << 16 |
                            p->addr[14] << 8 | p->addr[15],
                        32);
  }
  if (std::all_of(p->addr.begin(), p->addr.end(), [](std::uint8_t b) { return b == 0; }))
    return std::nullopt;  // 0.0.0.0 / :: : unbound socket, not a peer
  return *p;
}

struct Endpoint {
  std::optional<Prefix> addr;
  std::uint16_t port = 0;
};

// "host:port" with host possibly an unbracketed or bracketed IPv6 address.
Endpoint split_host_port(std::string_view s) {
  Endpoint e;
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return e;
  unsigned port = 0;
  auto ps = s.substr(colon + 1);
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc{} || p != ps.data() + ps.size() || port > 65535) return e;
  e.addr = usable_address(s.substr(0, colon));
  e.port = static_cast<std::uint16_t>(port);
  return e;
}

void map_address(const json& f, FalcoAlert& a) {
  auto read_addr = [&](const char* key) -> std::optional<Prefix> {
    auto s = field_string(f, key);
    if (!s) return std::nullopt;
    auto p = usable_address(*s);
    if (!p)
      a.warnings.push_back(std::string("output_fields.") + key + ": '" + *s +
                           "' is not a usable IP address, ignored");
    return p;
  };
  auto port_of = [&](const char* key) -> std::uint16_t {
    auto v = field_uint(f, key);
    return v && *v <= 65535 ? static_cast<std::uint16_t>(*v) : 0;
  };
  auto rip = read_addr("fd.rip");
  auto sip = read_addr("fd.sip");
  auto cip = read_addr("fd.cip");
  auto lip = read_addr("fd.lip");
  std::uint16_t sport = port_of("fd.sport"), cport = port_of("fd.cport");
  bool from_name = false;
  if (!rip && !sip && !cip) {
    if (auto name = field_string(f, "fd.name")) {
      auto arrow = name->find("->");
      if (arrow != std::string::npos) {
        auto client = split_host_port(std::string_view(*name).substr(0, arrow));
        auto server = split_host_port(std::string_view(*name).substr(arrow + 2));
        cip = client.addr;
        sip = server.addr;
        from_name = cip || sip;
        if (!cport) cport = client.port;
        if (!sport) sport = server.port;
      }
    }
  }
  auto evt = lower(field_string(f, "evt.type").value_or(""));
  const bool outbound_evt = evt == "connect" || evt == "sendto" || evt == "sendmsg";
  const bool inbound_evt = evt == "accept" || evt == "accept4" || evt == "listen";
  if (rip) {
    a.remote = rip;
    a.address_field = "fd.rip";
    a.remote_port = port_of("fd.rport");
    if (sip && *rip == *sip) {
      a.direction = Direction::egress;
      if (!a.remote_port) a.remote_port = sport;
    } else if (cip && *rip == *cip) {
      a.direction = Direction::ingress;
      if (!a.remote_port) a.remote_port = cport;
    }
    return;
  }
  // Without fd.rip: decide which side is local from fd.lip, then from the syscall, and by
  // default take the server side (Falco's network rules are mostly about outbound connects).
  bool local_is_server = false;
  if (lip && sip && *lip == *sip)
    local_is_server = true;
  else if (lip && cip && *lip == *cip)
    local_is_server = false;
  else if (inbound_evt || (cip && !sip))
    local_is_server = true;
  else if (outbound_evt)
    local_is_server = false;
  if (local_is_server && cip) {
    a.remote = cip;
    a.remote_port = cport;
    a.direction = Direction::ingress;
    a.address_field = "fd.cip";
  } else if (!local_is_server && sip) {
    a.remote = sip;
    a.remote_port = sport;
    a.direction = Direction::egress;
    a.address_field = "fd.sip";
  }
  if (a.remote && from_name) a.address_field = "fd.name";
}

}  // namespace

std::optional<Severity> falco_priority_to_severity(std::string_view priority) {
  const auto p = lower(priority);
  if (p == "emergency" || p == "alert" || p == "critical") return Severity::critical;
  if (p == "error") return Severity::high;
  if (p == "warning") return Severity::medium;
  if (p == "notice") return Severity::low;
  if (p == "informational" || p == "info" || p == "debug") return Severity::info;
  return std::nullopt;
}

Result<TimeMs> parse_rfc3339_ms(std::string_view t) {
  auto bad = [&](const char* why) {
    return fail("bad_time", quote_untrusted(t) + " is not an RFC 3339 time: " + why);
  };
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    if (pos + len > t.size()) return false;
    auto [p, ec] = std::from_chars(t.data() + pos, t.data() + pos + len, out);
    return ec == std::errc{} && p == t.data() + pos + len;
  };
  int y, mo, d, h, mi, s;
  if (t.size() < 20 || !num(0, 4, y) || t[4] != '-' || !num(5, 2, mo) || t[7] != '-' ||
      !num(8, 2, d) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !num(11, 2, h) ||
      t[13] != ':' || !num(14, 2, mi) || t[16] != ':' || !num(17, 2, s))
    return bad("expected YYYY-MM-DDTHH:MM:SS");
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
    return bad("field out of range");
  std::size_t pos = 19;
  std::int64_t frac_ms = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    std::size_t digits = 0;
    while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos]))) {
      if (digits < 3) frac_ms = frac_ms * 10 + (t[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad("empty fraction");
    for (std::size_t i = digits; i < 3; ++i) frac_ms *= 10;
  }
  std::int64_t offset_min = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh, om;
    if (!num(pos + 1, 2, oh) || pos + 3 >= t.size() || t[pos + 3] != ':' || !num(pos + 4, 2, om) ||
        oh > 23 || om > 59)
      return bad("malformed UTC offset");
    offset_min = (t[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return bad("missing 'Z' or UTC offset");
  }
  if (pos != t.size()) return bad("trailing characters");
  // Days from civil (Howard Hinnant's algorithm), proleptic Gregorian calendar.
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(yy - era * 400);
  const unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
  return secs * 1000 + frac_ms;
}

Result<FalcoAlert> parse_falco_alert(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail("bad_json", "request body is not valid JSON");
  if (!j.is_object())
    return fail("bad_json", "alert must be a JSON object, got " + std::string(j.type_name()));
  FalcoAlert a;
  auto required = [&](const char* key, std::string& out) -> Result<void> {
    auto it = j.find(key);
    if (it == j.end()) return fail("missing_field", std::string("field '") + key + "' is missing");
    if (!it->is_string())
      return fail("bad_field",
                  std::string("field '") + key + "' must be a string, got " + it->type_name());
    out = it->get<std::string>();
    return {};
  };
  for (auto [key, out] :
       {std::pair{"rule", &a.rule}, {"priority", &a.priority}, {"output", &a.output}})
    if (auto r = required(key, *out); !r) return std::unexpected(r.error());
  auto sev = falco_priority_to_severity(a.priority);
  if (!sev)
    return fail("bad_field",
                "field 'priority': " + quote_untrusted(a.priority) + " is not a Falco priority");
  a.severity = *sev;
  auto opt_string = [&](const char* key, std::string& out) {
    if (auto it = j.find(key); it != j.end() && it->is_string()) out = it->get<std::string>();
  };
  opt_string("source", a.source);
  opt_string("hostname", a.hostname);
  if (auto it = j.find("tags"); it != j.end() && it->is_array())
    for (const auto& t : *it)
      if (t.is_string()) a.tags.push_back(t.get<std::string>());
  if (auto it = j.find("time"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return fail("bad_field", "field 'time' must be an RFC 3339 string");
    auto t = parse_rfc3339_ms(it->get<std::string>());
    if (!t) return fail("bad_field", "field 'time': " + t.error().message);
    a.time = *t;
  }
  auto of = j.find("output_fields");
  if (of == j.end() || of->is_null()) return a;
  if (!of->is_object())
    return fail("bad_field",
                "field 'output_fields' must be an object, got " + std::string(of->type_name()));
  const json& f = *of;
  if (a.time == 0)
    if (auto ns = field_uint(f, "evt.time")) a.time = static_cast<TimeMs>(*ns / 1'000'000);
  a.identity.container_id = field_string(f, "container.id").value_or("");
  if (a.identity.container_id == "host") a.identity.container_id.clear();
  a.identity.pod_name = field_string(f, "k8s.pod.name").value_or("");
  a.identity.pod_namespace = field_string(f, "k8s.ns.name").value_or("");
  a.identity.pod_uid = field_string(f, "k8s.pod.uid").value_or("");
  a.process = field_string(f, "proc.name").value_or("");
  if (auto pid = field_uint(f, "proc.pid"); pid && *pid <= 0xffffffffu)
    a.pid = static_cast<std::uint32_t>(*pid);
  map_address(f, a);
  return a;
}

std::optional<Detection> falco_to_detection(const FalcoAlert& alert, TimeMs now,
                                            const FalcoMappingOptions& options) {
  if (!alert.remote || alert.severity < options.min_severity) return std::nullopt;
  Detection d;
  d.prefix = *alert.remote;
  d.direction = alert.direction;
  d.detector = "falco";
  d.severity = alert.severity;
  d.confidence = options.confidence[static_cast<int>(alert.severity)];
  d.reason = "Falco rule '" + alert.rule + "' (" + alert.priority + ") on " +
             (alert.hostname.empty() ? std::string("?") : alert.hostname) + " names " +
             alert.remote->to_string() +
             (alert.remote_port ? ":" + std::to_string(alert.remote_port) : std::string()) +
             " via " + alert.address_field;
  d.identity = alert.identity;
  d.at = alert.time ? alert.time : now;
  return d;
}

}  // namespace meshd::sensor
