#include "tests/fuzz/crowdsec/fuzz_body.hpp"

#include <cstdlib>
#include <string_view>

#include "sensor/detectors/crowdsec.hpp"

namespace meshd::sensor::fuzz {

bool fuzz_one(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)parse_go_duration(body.substr(0, 64));
  auto s = parse_crowdsec_stream(body);
  if (!s) {
    if (s.error().code != "bad_json" && s.error().code != "bad_shape") std::abort();
    return false;
  }
  CrowdsecDecisions t;
  auto a = t.apply(*s, true, 1'000'000);
  auto b = t.apply(*s, false, 1'000'500);
  auto c = t.expire(1'000'000 + 365LL * 24 * 3'600'000);
  // Whatever was enforced is lifted again by the end of time, and the table is empty.
  if (t.stats().decisions != 0 || t.stats().prefixes != 0) std::abort();
  if (a.local_enforce.size() + b.local_enforce.size() < c.local_lift.size()) std::abort();
  return true;
}

std::vector<std::string> seed_inputs() {
  return {
      R"({"deleted":null,"new":null})",
      R"({"deleted":[{"duration":"-32.751982ms","id":1,"origin":"cscli","scenario":"test-r","scope":"Ip","type":"ban","value":"192.0.2.5"}],"new":[{"duration":"59m59.327600603s","id":3,"origin":"cscli","scenario":"manual 'ban' from 'l-test'","scope":"Ip","type":"ban","value":"2001:db8::5"},{"duration":"3h59m59.32759857s","id":2,"origin":"cscli","scenario":"manual 'ban' from 'l-test'","scope":"Range","type":"ban","value":"198.51.100.0/24"},{"duration":"3h59m59.327598219s","id":4,"origin":"cscli","scenario":"manual 'captcha' from 'l-test'","scope":"Range","type":"captcha","value":"2001:db8:1::/64"}]})",
      R"({"new":[{"duration":"167h59m","id":77,"origin":"CAPI","scenario":"crowdsecurity/ssh-bf","scope":"Ip","type":"ban","value":"203.0.113.9"},{"duration":"23h","id":78,"origin":"lists","scenario":"firehol_level1","scope":"Range","type":"ban","value":"203.0.113.0/28"},{"duration":"4h","id":79,"origin":"crowdsec","scenario":"crowdsecurity/http-probing","scope":"Country","type":"ban","value":"FR"}]})",
      R"({"new":[{"duration":"1h","id":5,"origin":"cscli-import","scope":"Ip","type":"ban","value":"192.0.2.1"},{"duration":"2h","id":6,"origin":"cscli","scope":"Ip","type":"ban","value":"192.0.2.1"}],"deleted":[{"id":5,"origin":"cscli-import","scope":"Ip","type":"ban","value":"192.0.2.1"}]})",
  };
}

}  // namespace meshd::sensor::fuzz
