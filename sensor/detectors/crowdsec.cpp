#include "sensor/detectors/crowdsec.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace meshd::sensor {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxMessages = 20;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// One list item as a decision; the reason when it is not one. `need_duration`: "new" items
// must carry a duration (their expiry), "deleted" items need not.
Result<CrowdsecDecision> decision_of(const json& item, bool need_duration) {
  if (!item.is_object()) return fail("malformed", "item is not an object");
  CrowdsecDecision d;
  auto id = item.find("id");
  if (id == item.end() || !id->is_number_integer() || id->get<std::int64_t>() < 0)
    return fail("malformed", "missing or non-integer \"id\"");
  d.id = id->get<std::uint64_t>();
  auto str = [&](const char* key, std::string& out, bool required) -> Result<void> {
    auto it = item.find(key);
    if (it == item.end() || it->is_null()) {
      if (required)
        return fail("malformed", "decision " + std::to_string(d.id) + ": missing \"" + key + "\"");
      return {};
    }
    if (!it->is_string())
      return fail("malformed",
                  "decision " + std::to_string(d.id) + ": \"" + key + "\" is not a string");
    out = it->get<std::string>();
    return {};
  };
  for (auto [key, field, required] :
       {std::tuple{"value", &d.value, true}, std::tuple{"scope", &d.scope, true},
        std::tuple{"type", &d.type, true}, std::tuple{"origin", &d.origin, true},
        std::tuple{"scenario", &d.scenario, false}})
    if (auto r = str(key, *field, required); !r) return std::unexpected(r.error());
  std::string duration;
  if (auto r = str("duration", duration, need_duration); !r) return std::unexpected(r.error());
  if (!duration.empty()) {
    auto ms = parse_go_duration(duration);
    if (!ms)
      return fail("malformed", "decision " + std::to_string(d.id) + ": " + ms.error().message);
    d.duration_ms = *ms;
  }
  return d;
}

}  // namespace

Result<DurationMs> parse_go_duration(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return fail("bad_duration", "duration '" + std::string(text) + "': " + why);
  };
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return bad("empty");
  if (s == "0") return 0;
  long double total_ms = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    long double value = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      value = value * 10 + (s[i] - '0');
      digits = true;
      ++i;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        value += (s[i] - '0') * scale;
        scale /= 10;
        digits = true;
        ++i;
      }
    }
    if (!digits) return bad("expected a number at '" + std::string(s) + "'");
    s.remove_prefix(i);
    long double unit_ms = 0;
    auto unit = [&](std::string_view u, long double ms) {
      if (unit_ms == 0 && s.starts_with(u)) {
        unit_ms = ms;
        s.remove_prefix(u.size());
      }
    };
    // Longest units first: "ms" before "m", "ns" before nothing else clashing.
    unit("ns", 1e-6L);
    unit("us", 1e-3L);
    unit("\xC2\xB5s", 1e-3L);  // µ (micro sign)
    unit("\xCE\xBCs", 1e-3L);  // μ (Greek mu)
    unit("ms", 1);
    unit("s", 1000);
    unit("m", 60'000);
    unit("h", 3'600'000);
    if (unit_ms == 0) return bad("missing or unknown unit at '" + std::string(s) + "'");
    total_ms += value * unit_ms;
    if (total_ms > 1e15L) return bad("out of range");
  }
  auto ms = static_cast<DurationMs>(total_ms);  // towards zero
  return negative ? -ms : ms;
}

Result<CrowdsecStream> parse_crowdsec_stream(std::string_view body) {
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::parse_error& e) {
    return fail("bad_json", "decision stream is not JSON: byte " + std::to_string(e.byte) + ": " +
                                std::string(e.what()).substr(std::string(e.what()).rfind(':') + 1));
  }
  if (!doc.is_object()) return fail("bad_shape", "decision stream is not a JSON object");
  CrowdsecStream out;
  for (auto [key, list, need_duration] :
       {std::tuple{"new", &out.added, true}, std::tuple{"deleted", &out.deleted, false}}) {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) continue;
    if (!it->is_array())
      return fail("bad_shape", std::string("decision stream: \"") + key + "\" is not a list");
    list->reserve(it->size());
    for (const auto& item : *it) {
      auto d = decision_of(item, need_duration);
      if (d) {
        list->push_back(std::move(*d));
        continue;
      }
      ++out.malformed;
      if (out.errors.size() < kMaxMessages)
        out.errors.push_back(std::string("\"") + key + "\": " + d.error().message);
    }
  }
  if (!doc.contains("new") && !doc.contains("deleted"))
    return fail("bad_shape", "decision stream has neither \"new\" nor \"deleted\"");
  return out;
}

std::string_view to_string(CrowdsecClass c) {
  switch (c) {
    case CrowdsecClass::gossip:
      return "gossip";
    case CrowdsecClass::local_only:
      return "local_only";
    case CrowdsecClass::skipped_type:
      return "skipped_type";
    case CrowdsecClass::skipped_scope:
      return "skipped_scope";
    case CrowdsecClass::bad_value:
      return "bad_value";
  }
  return "?";
}

CrowdsecMapped classify_crowdsec(const CrowdsecDecision& d, const CrowdsecOptions& options,
                                 std::string* why) {
  CrowdsecMapped m;
  if (!iequals(d.type, "ban")) {
    m.cls = CrowdsecClass::skipped_type;
    return m;
  }
  const bool ip = iequals(d.scope, "ip");
  if (!ip && !iequals(d.scope, "range")) {
    m.cls = CrowdsecClass::skipped_scope;
    return m;
  }
  auto bad = [&](std::string reason) {
    m.cls = CrowdsecClass::bad_value;
    if (why)
      *why = "decision " + std::to_string(d.id) + " (" + d.scope + " '" + d.value +
             "'): " + std::move(reason);
    return m;
  };
  auto strict = Prefix::parse(d.value);
  auto prefix = strict ? strict : Prefix::parse_masking(d.value);
  if (!prefix) return bad(prefix.error().message);
  if (ip && !prefix->is_host()) return bad("scope Ip names a network, not one address");
  const int min_len = prefix->family == Family::v4 ? options.min_len_v4 : options.min_len_v6;
  if (prefix->len < min_len)
    return bad("broader than /" + std::to_string(min_len) + ", refusing a range that wide");
  m.prefix = *prefix;
  m.cls = options.claim_confidence.contains(d.origin) ? CrowdsecClass::gossip
                                                      : CrowdsecClass::local_only;
  return m;
}

Result<LapiUrl> parse_lapi_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return fail("bad_url", "'" + std::string(url) + "': " + why);
  };
  if (url.starts_with("https://"))
    return bad(
        "https is not supported; point it at the LAPI over http (loopback or a trusted "
        "network)");
  if (!url.starts_with("http://")) return bad("expected http://HOST:PORT");
  std::string_view rest = url.substr(7);
  LapiUrl out;
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    out.base_path = std::string(rest.substr(slash));
    while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  }
  std::string_view port_text;
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after ']'");
      port_text = after.substr(1);
    }
  } else {
    auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty()) return bad("no host");
  if (!port_text.empty() || authority.ends_with(":")) {
    if (port_text.empty() || port_text.size() > 5) return bad("bad port");
    unsigned port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9') return bad("bad port '" + std::string(port_text) + "'");
      port = port * 10 + static_cast<unsigned>(c - '0');
    }
    if (port == 0 || port > 65535) return bad("port out of range");
    out.port = static_cast<std::uint16_t>(port);
  } else {
    out.port = 80;
  }
  return out;
}

CrowdsecDecisions::CrowdsecDecisions(CrowdsecOptions options) : options_(std::move(options)) {}

void CrowdsecDecisions::remove_id(std::uint64_t id, std::vector<Prefix>& touched,
                                  CrowdsecChanges& out) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  const Prefix prefix = it->second.prefix;
  if (!it->second.gossip) out.local_gone.push_back(id);
  by_id_.erase(it);
  auto ps = by_prefix_.find(prefix);
  if (ps == by_prefix_.end()) return;
  std::erase(ps->second.ids, id);
  touched.push_back(prefix);
}

void CrowdsecDecisions::settle(const Prefix& prefix, CrowdsecChanges& out) {
  auto it = by_prefix_.find(prefix);
  if (it == by_prefix_.end()) return;
  PrefixState& st = it->second;
  if (st.ids.empty()) {
    if (st.local_expiry != 0) out.local_lift.push_back(prefix);
    if (st.claim) out.retract.push_back(prefix);
    by_prefix_.erase(it);
    return;
  }
  TimeMs local = 0;
  const Entry* lead = nullptr;  // the longest claiming decision
  for (auto id : st.ids) {
    const Entry& e = by_id_.at(id);
    local = std::max(local, e.expires_at);
    if (e.gossip && (!lead || e.expires_at > lead->expires_at)) lead = &e;
  }
  // A full (startup) answer repeats held decisions with a remaining duration measured a few
  // ms later: only real changes (over a second) re-time the local block.
  if (st.local_expiry == 0 || std::llabs(local - st.local_expiry) > 1000) {
    st.local_expiry = local;
    out.local_enforce.push_back({prefix, local});
  }
  if (!lead) {
    if (st.claim) {
      out.retract.push_back(prefix);
      st.claim.reset();
    }
    return;
  }
  // A claim is re-signed when the lead decision lasts notably longer (a re-added ban).
  if (!st.claim || lead->expires_at > st.claim->expires_at + 60'000 ||
      lead->origin != st.claim->origin || lead->scenario != st.claim->scenario) {
    CrowdsecClaim c{prefix, lead->origin, lead->scenario,
                    options_.claim_confidence.at(lead->origin), lead->expires_at};
    st.claim = c;
    out.claim.push_back(std::move(c));
  }
}

CrowdsecChanges CrowdsecDecisions::apply(const CrowdsecStream& stream, bool full, TimeMs now) {
  CrowdsecChanges out;
  std::vector<Prefix> touched;
  std::unordered_map<std::uint64_t, bool> seen;
  if (full) seen.reserve(stream.added.size());
  for (const auto& d : stream.added) {
    std::string why;
    auto m = classify_crowdsec(d, options_, &why);
    if (m.cls == CrowdsecClass::skipped_type) {
      ++out.skipped["type " + d.type];
      continue;
    }
    if (m.cls == CrowdsecClass::skipped_scope) {
      ++out.skipped["scope " + d.scope];
      continue;
    }
    if (m.cls == CrowdsecClass::bad_value) {
      ++out.skipped["bad value"];
      if (out.bad_values.size() < kMaxMessages) out.bad_values.push_back(std::move(why));
      continue;
    }
    if (d.duration_ms <= 0) continue;  // already over
    if (full) seen[d.id] = true;
    const TimeMs expires_at = now + d.duration_ms;
    auto [it, fresh] = by_id_.try_emplace(d.id);
    Entry& e = it->second;
    if (!fresh && e.prefix != *m.prefix) {  // an id never changes value; be safe anyway
      std::erase(by_prefix_[e.prefix].ids, d.id);
      touched.push_back(e.prefix);
      fresh = true;
    }
    if (!fresh && std::llabs(expires_at - e.expires_at) <= 1000 && e.origin == d.origin &&
        e.scenario == d.scenario)
      continue;  // the same decision repeated by a full answer
    const bool was_local = !fresh && !e.gossip;
    e.prefix = *m.prefix;
    e.gossip = m.cls == CrowdsecClass::gossip;
    e.origin = d.origin;
    e.scenario = d.scenario;
    e.expires_at = expires_at;
    if (fresh) by_prefix_[e.prefix].ids.push_back(d.id);
    touched.push_back(e.prefix);
    if (!e.gossip)
      out.local_held.push_back({d.id, e.prefix, e.origin, e.scenario, e.expires_at, false});
    else if (was_local)
      out.local_gone.push_back(d.id);
  }
  for (const auto& d : stream.deleted) remove_id(d.id, touched, out);
  if (full) {
    std::vector<std::uint64_t> gone;
    for (const auto& [id, e] : by_id_)
      if (!seen.contains(id)) gone.push_back(id);
    for (auto id : gone) remove_id(id, touched, out);
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (const auto& p : touched) settle(p, out);
  return out;
}

CrowdsecChanges CrowdsecDecisions::expire(TimeMs now) {
  CrowdsecChanges out;
  std::vector<Prefix> touched;
  std::vector<std::uint64_t> gone;
  for (const auto& [id, e] : by_id_)
    if (e.expires_at <= now) gone.push_back(id);
  for (auto id : gone) remove_id(id, touched, out);
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (const auto& p : touched) settle(p, out);
  return out;
}

CrowdsecChanges CrowdsecDecisions::restore(const std::vector<CrowdsecHeld>& held, TimeMs now) {
  CrowdsecChanges out;
  std::vector<Prefix> touched;
  for (const auto& h : held) {
    if (h.gossip || h.expires_at <= now || by_id_.contains(h.id)) continue;
    const int min_len = h.prefix.family == Family::v4 ? options_.min_len_v4 : options_.min_len_v6;
    if (h.prefix.len < min_len) continue;  // the same bound as for the LAPI's answers
    Entry& e = by_id_[h.id];
    e.prefix = h.prefix;
    e.gossip = false;
    e.origin = h.origin;
    e.scenario = h.scenario;
    e.expires_at = h.expires_at;
    by_prefix_[h.prefix].ids.push_back(h.id);
    touched.push_back(h.prefix);
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (const auto& p : touched) settle(p, out);
  return out;
}

std::vector<CrowdsecHeld> CrowdsecDecisions::overlapping(const Prefix& prefix) const {
  std::vector<CrowdsecHeld> out;
  for (const auto& [p, st] : by_prefix_) {
    if (!p.overlaps(prefix)) continue;
    for (auto id : st.ids) {
      const Entry& e = by_id_.at(id);
      out.push_back({id, e.prefix, e.origin, e.scenario, e.expires_at, e.gossip});
    }
  }
  return out;
}

std::optional<CrowdsecClaim> CrowdsecDecisions::claim_for(const Prefix& prefix) const {
  auto it = by_prefix_.find(prefix);
  if (it == by_prefix_.end()) return std::nullopt;
  return it->second.claim;
}

std::vector<Prefix> CrowdsecDecisions::claimed_prefixes() const {
  std::vector<Prefix> out;
  for (const auto& [p, st] : by_prefix_)
    if (st.claim) out.push_back(p);
  return out;
}

CrowdsecTableStats CrowdsecDecisions::stats() const {
  CrowdsecTableStats s;
  s.decisions = by_id_.size();
  s.prefixes = by_prefix_.size();
  for (const auto& [p, st] : by_prefix_) {
    if (st.claim)
      ++s.claimed;
    else
      ++s.local_only;
  }
  return s;
}

}  // namespace meshd::sensor
