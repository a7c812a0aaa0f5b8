#include "trust/ledger.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace meshd::trust {
namespace {

constexpr std::string_view kHeader = "meshd-trust-ledger v1";

bool plain(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '.' || ch == '_' || ch == '-' || ch == ':' || ch == '@' || ch == '/';
}

// Percent-escapes everything but a safe set; the empty string is written as "~" so that
// fields stay space-separated.
std::string escape(std::string_view s) {
  if (s.empty()) return "~";
  std::string out;
  static constexpr char hex[] = "0123456789ABCDEF";
  for (unsigned char ch : s) {
    if (plain(static_cast<char>(ch))) {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

std::optional<std::string> unescape(std::string_view s) {
  if (s == "~") return std::string{};
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      if (!plain(s[i])) return std::nullopt;
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc{} || p != s.data() + i + 3) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

void TrustLedger::decay_to(LedgerEntry& e, TimeMs now) const {
  if (now <= e.updated_at) return;
  double f = std::exp2(-static_cast<double>(now - e.updated_at) /
                       static_cast<double>(params_.half_life_ms));
  e.pos *= f;
  e.neg *= f;
  e.updated_at = now;
}

bool TrustLedger::ensure(const NodeId& node, const DomainId& domain, TimeMs now) {
  auto [it, inserted] = entries_.try_emplace(node);
  if (inserted) it->second.updated_at = now;
  it->second.domain = domain;
  return inserted;
}

void TrustLedger::pin(const NodeId& node, const DomainId& domain, TimeMs now) {
  ensure(node, domain, now);
  auto& e = entries_[node];
  e.pinned = true;
  e.quarantine_until = 0;
}

double TrustLedger::trust(const LedgerEntry& e, TimeMs now) const {
  if (e.pinned) return params_.t_cap;
  if (now < e.quarantine_until) return 0.0;
  double a0 = params_.prior_weight * params_.prior / params_.t_cap;
  double b0 = params_.prior_weight - a0;
  double t = params_.t_cap * (e.pos + a0) / (e.pos + e.neg + a0 + b0);
  return std::clamp(t, 0.0, params_.t_cap);
}

double TrustLedger::trust(const NodeId& node, TimeMs now) const {
  auto it = entries_.find(node);
  return it == entries_.end() ? 0.0 : trust(it->second, now);
}

bool TrustLedger::quarantined(const NodeId& node, TimeMs now) const {
  auto it = entries_.find(node);
  return it != entries_.end() && !it->second.pinned && now < it->second.quarantine_until;
}

void TrustLedger::add_gain(const NodeId& node, double weight, TimeMs now) {
  auto it = entries_.find(node);
  if (it == entries_.end() || it->second.pinned) return;
  decay_to(it->second, now);
  it->second.pos += params_.gain * weight;
}

void TrustLedger::add_loss(const NodeId& node, double weight, TimeMs now) {
  auto it = entries_.find(node);
  if (it == entries_.end() || it->second.pinned) return;
  decay_to(it->second, now);
  it->second.neg += params_.gain * params_.loss_ratio * weight;
}

void TrustLedger::quarantine(const NodeId& node, TimeMs now) {
  auto it = entries_.find(node);
  if (it == entries_.end() || it->second.pinned) return;
  auto& e = it->second;
  decay_to(e, now);
  e.pos = 0;
  e.neg = params_.post_quarantine_neg;
  e.quarantine_until = std::max(e.quarantine_until, now + params_.quarantine_ms);
}

bool TrustLedger::refresh(const NodeId& node, TimeMs now) {
  auto it = entries_.find(node);
  if (it == entries_.end() || it->second.pinned) return false;
  double before = trust(it->second, now);
  decay_to(it->second, now);
  return trust(it->second, now) != before;
}

const LedgerEntry* TrustLedger::find(const NodeId& node) const {
  auto it = entries_.find(node);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string TrustLedger::serialize() const {
  std::vector<const std::pair<const NodeId, LedgerEntry>*> rows;
  rows.reserve(entries_.size());
  for (const auto& kv : entries_) rows.push_back(&kv);
  std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->first < b->first; });
  std::string out(kHeader);
  out += '\n';
  for (auto* kv : rows) {
    const auto& e = kv->second;
    out += escape(kv->first) + ' ' + escape(e.domain) + ' ' + fmt(e.pos) + ' ' + fmt(e.neg) + ' ' +
           std::to_string(e.updated_at) + ' ' + std::to_string(e.quarantine_until) + ' ' +
           (e.pinned ? "1" : "0") + '\n';
  }
  return out;
}

Result<TrustLedger> TrustLedger::deserialize(std::string_view text, const Params& params) {
  TrustLedger ledger(params);
  std::size_t line_no = 0;
  auto bad = [&](const std::string& why) {
    return fail("bad_ledger", "trust ledger line " + std::to_string(line_no) + ": " + why);
  };
  bool header = false;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!header) {
      if (line != kHeader) return bad("expected header '" + std::string(kHeader) + "'");
      header = true;
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string_view> f;
    while (!line.empty()) {
      auto sp = line.find(' ');
      f.push_back(line.substr(0, sp));
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    }
    if (f.size() != 7) return bad("expected 7 fields, found " + std::to_string(f.size()));
    auto node = unescape(f[0]);
    auto domain = unescape(f[1]);
    if (!node || node->empty()) return bad("bad node id '" + std::string(f[0]) + "'");
    if (!domain) return bad("bad domain '" + std::string(f[1]) + "'");
    LedgerEntry e;
    e.domain = *domain;
    auto num = [](std::string_view s, auto& out) {
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc{} && p == s.data() + s.size();
    };
    if (!num(f[2], e.pos) || !std::isfinite(e.pos) || e.pos < 0)
      return bad("pos '" + std::string(f[2]) + "' is not a non-negative number");
    if (!num(f[3], e.neg) || !std::isfinite(e.neg) || e.neg < 0)
      return bad("neg '" + std::string(f[3]) + "' is not a non-negative number");
    if (!num(f[4], e.updated_at)) return bad("updated_at '" + std::string(f[4]) + "' is not ms");
    if (!num(f[5], e.quarantine_until))
      return bad("quarantine_until '" + std::string(f[5]) + "' is not ms");
    if (f[6] != "0" && f[6] != "1") return bad("pinned must be 0 or 1");
    e.pinned = f[6] == "1";
    if (!ledger.entries_.emplace(*node, e).second) return bad("duplicate node '" + *node + "'");
  }
  if (!header) return fail("bad_ledger", "trust ledger is empty (no header)");
  return ledger;
}

}  // namespace meshd::trust
