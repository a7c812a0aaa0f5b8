// meshctl commands that talk to a running meshd over its control socket: status, peers,
// blocks, events, trust, explain, block add|del, and operator decisions (signed here with
// the operator key, which never reaches the daemon).
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "meshd/common/numbers.hpp"
#include "meshd/ctl/client.hpp"
#include "meshd/ctl/ctl.hpp"
#include "proto/cert.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "proto/keys.hpp"

namespace meshd::ctl {
namespace {

using nlohmann::json;

struct ListOptions {
  bool json = false;
};

// Runs one request; prints the JSON verbatim with --json, else through `render`.
Result<void> run(const Context& ctx, const v1::ControlRequest& req, bool as_json,
                 const std::function<void(const json&)>& render) {
  auto resp = call(ctx.socket, req);
  if (!resp) return std::unexpected(resp.error());
  json j = json::parse(resp->json(), nullptr, false);
  if (j.is_discarded()) return fail("bad_response", "meshd answered with invalid JSON");
  if (as_json)
    std::cout << j.dump(2) << "\n";
  else
    render(j);
  return {};
}

std::string time_or_dash(const json& v) {
  return v.is_number() && v.get<std::int64_t>() > 0 ? format_time(v.get<std::int64_t>()) : "-";
}

std::string fixed(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void print_status(const json& j) {
  for (const char* k : {"node", "domain", "peers", "enforced", "active_claims", "pending_blocks",
                        "backend", "enforcement", "policy", "store_envelopes", "own_seq"}) {
    if (!j.contains(k)) continue;
    std::cout << k << ": " << (j[k].is_string() ? j[k].get<std::string>() : j[k].dump()) << "\n";
  }
  if (j.contains("uptime_ms"))
    std::cout << "uptime: " << j["uptime_ms"].get<std::int64_t>() / 1000 << "s\n";
}

void print_peers(const json& arr) {
  std::printf("%-20s %-12s %-24s %-4s %-6s %-8s %s\n", "NODE", "DOMAIN", "ADDRESS", "DIR", "TRUST",
              "PENALTY", "SINCE");
  for (const auto& p : arr) {
    std::string addr = p.value("address", "") + ":" + std::to_string(p.value("port", 0));
    std::printf("%-20s %-12s %-24s %-4s %-6s %-8s %s\n", p.value("node", "").c_str(),
                p.value("domain", "").c_str(), addr.c_str(),
                p.value("outbound", false) ? "out" : "in", fixed(p.value("trust", 0.0), 2).c_str(),
                fixed(p.value("penalty", 0.0), 1).c_str(),
                time_or_dash(p["connected_since"]).c_str());
  }
}

void print_blocks(const json& arr) {
  std::printf("%-24s %-8s %-8s %-21s %-6s %-6s %s\n", "PREFIX", "ENFORCED", "DIR", "EXPIRES",
              "SCORE", "NEEDS", "ORIGINS");
  for (const auto& b : arr) {
    std::string origins;
    for (const auto& o : b["origins"])
      origins += (origins.empty() ? "" : ",") + o.get<std::string>();
    std::printf("%-24s %-8s %-8s %-21s %-6s %-6s %s\n", b.value("prefix", "").c_str(),
                b.value("enforced", false) ? "yes" : "no", b.value("direction", "").c_str(),
                time_or_dash(b["expires_at"]).c_str(), fixed(b.value("score", 0.0)).c_str(),
                fixed(b.value("threshold", 0.0)).c_str(), origins.c_str());
  }
}

void print_trust(const json& arr) {
  std::printf("%-20s %-12s %-6s %-6s %-6s %s\n", "NODE", "DOMAIN", "TRUST", "POS", "NEG", "STATE");
  for (const auto& t : arr) {
    std::string state = t.value("self", false) ? "self"
                        : t.value("quarantined", false)
                            ? "quarantined until " + time_or_dash(t["quarantine_until"])
                            : "ok";
    std::printf("%-20s %-12s %-6s %-6s %-6s %s\n", t.value("node", "").c_str(),
                t.value("domain", "").c_str(), fixed(t.value("trust", 0.0), 2).c_str(),
                fixed(t.value("positive", 0.0), 1).c_str(),
                fixed(t.value("negative", 0.0), 1).c_str(), state.c_str());
  }
}

void print_event(const json& e) {
  std::string at = time_or_dash(e.value("at", json(0)));
  std::string rest;
  for (auto it = e.begin(); it != e.end(); ++it) {
    if (it.key() == "event" || it.key() == "at") continue;
    rest += " " + it.key() + "=" +
            (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  }
  std::cout << at << " " << e.value("event", "?") << rest << "\n";
}

// A claim's severity: `info` is a detector's grade only, so the CLI does not offer it.
v1::Severity parse_claim_severity(const std::string& s, Result<void>& err) {
  auto sev = parse_severity(s);
  if (sev && *sev != Severity::info) return proto::to_wire(*sev);
  err = fail("bad_severity", "'" + s + "' is not low, medium, high or critical");
  return v1::SEVERITY_UNSPECIFIED;
}

// The operator's own sequence counter lives next to the key (`<key>.seq`), so decisions from
// one operator key form one contiguous sequence space, as anti-entropy expects.
Result<std::uint64_t> next_operator_seq(const std::string& key_path) {
  std::string path = key_path + ".seq";
  std::uint64_t seq = 0;
  if (auto text = proto::read_file(path)) {
    std::string_view digits(*text);
    while (!digits.empty() && (digits.back() == '\n' || digits.back() == ' '))
      digits.remove_suffix(1);
    auto n = parse_integer<std::uint64_t>(digits, 0, std::numeric_limits<std::uint64_t>::max() - 1);
    if (!n)
      return fail("bad_seq_file", path + ": " + n.error().message +
                                      " (the operator's last sequence number; fix or remove it)");
    seq = *n;
  }
  ++seq;
  if (auto r = proto::write_file_atomic(path, std::to_string(seq) + "\n", 0600, true); !r)
    return std::unexpected(r.error());
  return seq;
}

struct DecisionOptions {
  std::string action, cidr, key, cert, reason, ttl, direction = "both";
  bool false_positive = false;
};

Result<void> decision(const Context& ctx, const DecisionOptions& o) {
  auto prefix = Prefix::parse(o.cidr);
  if (!prefix) return fail("bad_cidr", prefix.error().message);
  auto key = proto::load_secret_key(o.key);
  if (!key) return std::unexpected(key.error());
  auto cert = proto::load_cert_file(o.cert);
  if (!cert) return std::unexpected(cert.error());
  auto decoded = proto::decode_cert(*cert);
  if (!decoded) return std::unexpected(decoded.error());
  if (decoded->role() != v1::ROLE_OPERATOR)
    return fail("cert_wrong_role", o.cert + " is a " +
                                       std::string(proto::role_name(decoded->role())) +
                                       " cert; decisions need an operator cert");
  if (decoded->public_key() != std::string(key->public_key().view()))
    return fail("identity_mismatch", o.cert + " does not certify the key in " + o.key);
  auto dir = parse_direction(o.direction);
  if (!dir) return fail("bad_direction", "'" + o.direction + "' is not egress, ingress or both");
  std::int64_t ttl = 0;
  if (!o.ttl.empty()) {
    auto t = parse_duration(o.ttl);
    if (!t) return std::unexpected(t.error());
    ttl = *t;
  }
  auto seq = next_operator_seq(o.key);
  if (!seq) return std::unexpected(seq.error());
  v1::OperatorDecision d;
  d.set_operator_id(decoded->node_id());
  d.set_seq(*seq);
  d.set_action(o.action == "block"     ? v1::OPERATOR_ACTION_BLOCK
               : o.action == "unblock" ? v1::OPERATOR_ACTION_UNBLOCK
                                       : v1::OPERATOR_ACTION_ALLOW);
  *d.mutable_target() = proto::to_cidr(*prefix);
  d.set_direction(proto::to_wire(*dir));
  d.set_false_positive(o.false_positive);
  d.set_ttl_ms(ttl);
  d.set_issued_at_ms(wall_now_ms());
  d.set_reason(o.reason);
  v1::ControlRequest req;
  auto* od = req.mutable_operator_decision();
  *od->mutable_decision() = proto::sign_operator_decision(d, *key);
  *od->mutable_decision()->mutable_signer_cert() = *cert;
  *od->mutable_operator_cert() = *cert;
  auto resp = call(ctx.socket, req);
  if (!resp) return std::unexpected(resp.error());
  std::cout << "operator " << o.action << " " << prefix->to_string() << " signed by "
            << decoded->node_id() << " (seq " << *seq << ") and submitted\n";
  return {};
}

}  // namespace

void register_control_commands(CLI::App& app, Context& ctx) {
  auto list = [&](const char* name, const char* help, auto fill, auto render) {
    auto opts = std::make_shared<ListOptions>();
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_flag("--json", opts->json, "print the daemon's JSON answer");
    cmd->callback([&ctx, opts, fill, render] {
      v1::ControlRequest req;
      fill(req);
      ctx.result = run(ctx, req, opts->json, render);
    });
    return cmd;
  };
  list(
      "status", "node, peers, enforced blocks, backend", [](auto& r) { r.mutable_status(); },
      print_status);
  list(
      "peers", "connected peers with trust and penalty", [](auto& r) { r.mutable_peers(); },
      print_peers);
  list(
      "blocks", "known targets: enforced or not, score, origins",
      [](auto& r) { r.mutable_blocks(); }, print_blocks);
  list(
      "trust", "trust ledger: every known origin", [](auto& r) { r.mutable_trust(); }, print_trust);

  {
    auto ip = std::make_shared<std::string>();
    auto opts = std::make_shared<ListOptions>();
    auto* cmd = app.add_subcommand("explain", "why is (or is not) this IP or CIDR blocked");
    cmd->add_option("IP", *ip, "address or CIDR")->required();
    cmd->add_flag("--json", opts->json, "print the structured breakdown as JSON");
    cmd->callback([&ctx, ip, opts] {
      v1::ControlRequest req;
      req.mutable_explain()->set_ip(*ip);
      ctx.result = run(ctx, req, opts->json, [](const json& j) {
        const auto& targets = j["targets"];
        for (std::size_t i = 0; i < targets.size(); ++i)
          std::cout << (i ? "\n" : "") << targets[i].value("text", "")
                    << (targets[i].value("text", "").ends_with("\n") ? "" : "\n");
      });
    });
  }
  {
    auto opts = std::make_shared<std::pair<bool, int>>(false, 50);
    auto as_json = std::make_shared<bool>(false);
    auto* cmd = app.add_subcommand("events", "recent events (claims, blocks, peers, proofs)");
    cmd->add_flag("--follow,-f", opts->first, "keep streaming new events");
    cmd->add_option("--limit", opts->second, "how many recent events first");
    cmd->add_flag("--json", *as_json, "JSON lines");
    cmd->callback([&ctx, opts, as_json] {
      v1::ControlRequest req;
      req.mutable_events()->set_follow(opts->first);
      req.mutable_events()->set_limit(static_cast<std::uint32_t>(opts->second));
      auto print = [as_json](const json& e) {
        if (*as_json)
          std::cout << e.dump() << std::endl;
        else
          print_event(e);
        std::cout.flush();
      };
      ctx.result = stream(ctx.socket, req, [&](const v1::ControlResponse& r) {
        json j = json::parse(r.json(), nullptr, false);
        if (j.is_array())
          for (const auto& e : j) print(e);
        else if (!j.is_discarded())
          print(j);
      });
    });
  }

  auto* block = app.add_subcommand("block", "local detections: sign a claim or retract one");
  block->require_subcommand(1);
  {
    struct AddOptions {
      std::string cidr, reason = "manual", ttl, severity = "high", direction = "both";
      double confidence = -1;
    };
    auto o = std::make_shared<AddOptions>();
    auto* add =
        block->add_subcommand("add", "claim CIDR as malicious (signed by this node, gossiped)");
    add->add_option("CIDR", o->cidr, "address or CIDR")->required();
    add->add_option("--confidence", o->confidence, "confidence in [0, 1]")->required();
    add->add_option("--reason", o->reason, "why (shown by explain)")->required();
    add->add_option("--ttl", o->ttl, "requested duration, e.g. 10m, 2h");
    add->add_option("--severity", o->severity, "low|medium|high|critical");
    add->add_option("--direction", o->direction, "egress|ingress|both");
    add->callback([&ctx, o] {
      Result<void> err;
      v1::ControlRequest req;
      auto* b = req.mutable_block_add();
      b->set_cidr(o->cidr);
      if (!(o->confidence >= 0 && o->confidence <= 1)) {
        ctx.result = fail("bad_confidence", "--confidence must be in [0, 1]");
        return;
      }
      b->set_confidence(o->confidence);
      b->set_reason(o->reason);
      b->set_severity(parse_claim_severity(o->severity, err));
      auto dir = parse_direction(o->direction);
      if (!dir)
        err = fail("bad_direction", "'" + o->direction + "' is not egress, ingress or both");
      else
        b->set_direction(proto::to_wire(*dir));
      if (!o->ttl.empty()) {
        auto t = parse_duration(o->ttl);
        if (!t)
          err = std::unexpected(t.error());
        else
          b->set_ttl_ms(*t);
      }
      if (auto p = Prefix::parse(o->cidr); !p) err = fail("bad_cidr", p.error().message);
      if (!err) {
        ctx.result = err;
        return;
      }
      ctx.result = run(ctx, req, false, [](const json& j) {
        std::cout << "claimed " << j.value("prefix", "") << " (seq " << j.value("seq", 0)
                  << "): " << (j.value("enforced", false) ? "enforced here" : "not enforced here")
                  << " (" << j.value("verdict", "") << ", score " << fixed(j.value("score", 0.0))
                  << ")\n";
      });
    });
  }
  {
    auto cidr = std::make_shared<std::string>();
    auto reason = std::make_shared<std::string>("operator retraction");
    auto* del = block->add_subcommand("del", "retract this node's claims on CIDR");
    del->add_option("CIDR", *cidr, "address or CIDR")->required();
    del->add_option("--reason", *reason, "why");
    del->callback([&ctx, cidr, reason] {
      if (auto p = Prefix::parse(*cidr); !p) {
        ctx.result = fail("bad_cidr", p.error().message);
        return;
      }
      v1::ControlRequest req;
      req.mutable_block_del()->set_cidr(*cidr);
      req.mutable_block_del()->set_reason(*reason);
      ctx.result = run(ctx, req, false, [](const json& j) {
        std::cout << "retracted " << j.value("prefix", "") << "\n";
      });
    });
  }
  {
    auto o = std::make_shared<DecisionOptions>();
    auto* dec =
        app.add_subcommand("decision", "operator-signed, authoritative fleet-wide decision");
    dec->add_option("ACTION", o->action, "block|unblock|allow")
        ->required()
        ->check(CLI::IsMember({"block", "unblock", "allow"}));
    dec->add_option("CIDR", o->cidr, "address or CIDR")->required();
    dec->add_option("--operator-key", o->key, "operator secret key file")->required();
    dec->add_option("--operator-cert", o->cert, "operator cert (role operator)")->required();
    dec->add_flag("--false-positive", o->false_positive,
                  "unblock: the claims were wrong (lowers their origins' trust)");
    dec->add_option("--ttl", o->ttl, "duration of a block/allow, e.g. 1d");
    dec->add_option("--reason", o->reason, "why");
    dec->add_option("--direction", o->direction, "egress|ingress|both (block)");
    dec->callback([&ctx, o] { ctx.result = decision(ctx, *o); });
  }
}

}  // namespace meshd::ctl
