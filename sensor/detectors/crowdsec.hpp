// CrowdSec decisions in: the Local API's bouncer stream, parsed and mapped without I/O.
//
// The LAPI answers `GET /v1/decisions/stream[?startup=true]` (header X-Api-Key) with
//   {"new": [{"id": 3, "origin": "cscli", "scenario": "manual 'ban' from 'host'", "scope": "Ip",
//             "type": "ban", "value": "192.0.2.5", "duration": "3h59m59.32s"}, ...] | null,
//    "deleted": [... same shape, "duration" negative once expired ...] | null}
// The startup answer holds every active decision in "new" (and every decision ever deleted in
// "deleted"); later answers hold what changed since the previous pull.
//
// CrowdsecDecisions turns a sequence of answers into what the daemon must do:
//  - every ban decision of scope Ip or Range (IPv4 and IPv6) is enforced on this node, at once,
//    until the decision ends (`local_enforce` / `local_lift`, in one batch per answer);
//  - decisions this host made (origins `crowdsec`: a scenario fired here; `cscli` and
//    `cscli-import`: an operator on this host) also become claims signed by this node, which
//    the mesh gossips (`claim` / `retract`);
//  - decisions of origins `CAPI` and `lists` (the community blocklist and subscribed lists)
//    are enforced locally only. Every LAPI of the fleet pulls the same lists, so every node
//    already has them: gossiping them would make every node sign tens of thousands of duplicate
//    claims, flooding the mesh and the origins' budgets for no added protection. Unknown
//    origins are treated the same way (nothing this host did not decide is gossiped);
//  - other types (captcha, throttle, ...) and scopes (Country, AS, ...) are counted and
//    skipped, as are values that are not an address or CIDR, and ranges wider than the
//    configured minimum prefix lengths (a corrupt "0.0.0.0/0" must not cut the host off).
// A value held by several decisions stays enforced until the last one ends (CrowdSec keeps
// one decision per alert, so `cscli decisions add` twice on one IP gives two ids).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"

namespace meshd::sensor {

struct CrowdsecDecision {
  std::uint64_t id = 0;
  std::string origin;          // crowdsec, cscli, cscli-import, CAPI, lists, ...
  std::string scenario;        // the reason
  std::string scope;           // Ip, Range, Country, AS, ...
  std::string type;            // ban, captcha, ...
  std::string value;           // 192.0.2.5, 198.51.100.0/24, FR, ...
  DurationMs duration_ms = 0;  // remaining; negative once expired or deleted
};

struct CrowdsecStream {
  std::vector<CrowdsecDecision> added;    // "new"
  std::vector<CrowdsecDecision> deleted;  // "deleted"
  // Items of either list that are not a decision object (missing/mistyped id, value, scope,
  // type, origin, or an unparsable duration): skipped and counted; at most 20 messages kept.
  std::size_t malformed = 0;
  std::vector<std::string> errors;
};

// Parses one stream answer. Errors: "bad_json" (not JSON: names the byte offset and the
// parser's reason) and "bad_shape" (not an object, or "new"/"deleted" neither a list nor null).
Result<CrowdsecStream> parse_crowdsec_stream(std::string_view body);

// Go's time.Duration text ("3h59m59.327s", "-32.75ms", "1h", "0s", "500us", "2µs") in ms,
// rounded towards zero. Error "bad_duration" naming the text.
Result<DurationMs> parse_go_duration(std::string_view text);

enum class CrowdsecClass : std::uint8_t {
  gossip,      // ban from this host: enforced here and claimed (signed, gossiped)
  local_only,  // ban from a shared list (CAPI, lists, unknown origins): enforced here only
  skipped_type,
  skipped_scope,
  bad_value,
};
std::string_view to_string(CrowdsecClass c);

struct CrowdsecOptions {
  // Origins whose decisions become claims, with the confidence of the claim.
  std::map<std::string, double> claim_confidence{
      {"crowdsec", 0.8}, {"cscli", 0.9}, {"cscli-import", 0.9}};
  // Ranges broader than these are refused (bad_value).
  int min_len_v4 = 8;
  int min_len_v6 = 16;
};

// The prefix a decision names, when it is a ban of scope Ip or Range; the class otherwise.
// `why` (optional) receives the reason of a bad_value.
struct CrowdsecMapped {
  CrowdsecClass cls = CrowdsecClass::bad_value;
  std::optional<Prefix> prefix;
};
CrowdsecMapped classify_crowdsec(const CrowdsecDecision& d, const CrowdsecOptions& options,
                                 std::string* why = nullptr);

struct CrowdsecBlock {
  Prefix prefix;
  TimeMs expires_at = 0;
};

struct CrowdsecClaim {
  Prefix prefix;
  std::string origin;
  std::string scenario;
  double confidence = 0;
  TimeMs expires_at = 0;  // of the longest decision claiming this prefix
};

// One active ban decision as the table holds it (for the daemon's store and for explain).
struct CrowdsecHeld {
  std::uint64_t id = 0;  // the LAPI's decision id
  Prefix prefix;
  std::string origin;  // CAPI, lists, cscli, ...
  std::string scenario;
  TimeMs expires_at = 0;
  bool gossip = false;  // claimed by this node (origins of this host) or local only
};

struct CrowdsecChanges {
  std::vector<CrowdsecBlock> local_enforce;  // new or re-timed local blocks
  std::vector<Prefix> local_lift;            // no decision holds the prefix any more
  std::vector<CrowdsecClaim> claim;          // sign (or re-sign with a longer TTL)
  std::vector<Prefix> retract;               // no claiming decision holds the prefix any more
  // Local-only decisions (CAPI, lists, ...) new or re-timed, and the ids of those that ended:
  // what the daemon persists, so they stay enforced across a restart (claims persist as
  // envelopes instead).
  std::vector<CrowdsecHeld> local_held;
  std::vector<std::uint64_t> local_gone;
  // Counted per class and per skipped kind ("type captcha", "scope Country", "value 'x'").
  std::map<std::string, std::uint64_t> skipped;
  std::vector<std::string> bad_values;  // reasons, at most 20
  bool empty() const {
    return local_enforce.empty() && local_lift.empty() && claim.empty() && retract.empty();
  }
};

struct CrowdsecTableStats {
  std::uint64_t decisions = 0;   // active decisions held
  std::uint64_t prefixes = 0;    // distinct prefixes enforced
  std::uint64_t claimed = 0;     // distinct prefixes with a claiming decision
  std::uint64_t local_only = 0;  // distinct prefixes held by list decisions only
};

struct LapiUrl {
  std::string host;  // name or address ("127.0.0.1", "::1", "lapi.internal")
  std::uint16_t port = 8080;
  std::string base_path;  // "" or "/prefix" (no trailing slash)
};

// "http://HOST[:PORT][/PATH]" ([v6] in brackets). Error "bad_url" naming the text and the
// reason (https is refused: the LAPI is expected on the node itself or a trusted network).
Result<LapiUrl> parse_lapi_url(std::string_view url);

class CrowdsecDecisions {
 public:
  explicit CrowdsecDecisions(CrowdsecOptions options = {});

  // Applies one answer. `full`: the answer is a startup answer (the complete active set):
  // decisions held but absent from it are removed (they ended while the stream was down).
  CrowdsecChanges apply(const CrowdsecStream& stream, bool full, TimeMs now);
  // Removes decisions whose duration has run out (the LAPI reports them in "deleted" too,
  // but a lost answer must not leave them behind).
  CrowdsecChanges expire(TimeMs now);
  // Puts back local-only decisions persisted before a restart (those already ended, or not
  // local-only, are ignored): their blocks come out in local_enforce, nothing in local_held.
  // The first full answer then removes the ones the LAPI no longer has.
  CrowdsecChanges restore(const std::vector<CrowdsecHeld>& held, TimeMs now);
  // Every active decision whose prefix overlaps `prefix` (contains it or lies inside it).
  std::vector<CrowdsecHeld> overlapping(const Prefix& prefix) const;

  // The active claiming decision on exactly this prefix, if any (for re-claiming).
  std::optional<CrowdsecClaim> claim_for(const Prefix& prefix) const;
  bool holds(const Prefix& prefix) const { return by_prefix_.contains(prefix); }
  // Every prefix with a claiming decision.
  std::vector<Prefix> claimed_prefixes() const;
  CrowdsecTableStats stats() const;
  const CrowdsecOptions& options() const { return options_; }

 private:
  struct Entry {
    Prefix prefix;
    bool gossip = false;
    std::string origin;
    std::string scenario;
    TimeMs expires_at = 0;
  };
  struct PrefixState {
    std::vector<std::uint64_t> ids;
    TimeMs local_expiry = 0;  // max over ids
    std::optional<CrowdsecClaim> claim;
  };
  // Recomputes a prefix's state after its ids changed and records what changed.
  void settle(const Prefix& prefix, CrowdsecChanges& out);
  void remove_id(std::uint64_t id, std::vector<Prefix>& touched, CrowdsecChanges& out);

  CrowdsecOptions options_;
  std::unordered_map<std::uint64_t, Entry> by_id_;
  std::map<Prefix, PrefixState> by_prefix_;
};

}  // namespace meshd::sensor
