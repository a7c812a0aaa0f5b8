// The Falco endpoint's HTTP request parsing: Beast's request parser with the endpoint's limits
// (sensor/falco_endpoint.cpp), fed the input in two pieces split at a point the input picks,
// then the body through parse_falco_alert.
// Properties: where the stream is split does not change the outcome (error or method, target,
// Authorization header and body); a body over the limit is refused as body_limit, never
// returned; a parsed request's body goes through parse_falco_alert deterministically.
#include <utility>  // before Asio (Boost 1.74)

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <string>

#include "sensor/detectors/falco.hpp"
#include "sensor/falco_endpoint.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

namespace {

namespace http = boost::beast::http;
const std::size_t kBodyLimit = meshd::sensor::FalcoEndpointOptions{}.max_body_bytes;

struct Parsed {
  bool ok = false;
  bool body_limit = false;
  std::string method, target, authorization, body;
  bool operator==(const Parsed&) const = default;
};

Parsed parse(std::string_view in, std::size_t split) {
  http::request_parser<http::string_body> p;
  p.body_limit(kBodyLimit);
  p.eager(true);
  boost::beast::error_code ec;
  // The bytes arrive in two reads; each put() consumes what it can and the caller keeps the
  // unconsumed tail, as Beast's read loop does.
  std::string buf(in.substr(0, split));
  std::size_t fed = split;
  while (!p.is_done()) {
    const std::size_t n = p.put(boost::asio::buffer(buf), ec);
    buf.erase(0, n);
    if (ec == http::error::need_more || (!ec && n == 0)) {
      ec = {};
      if (fed < in.size()) {
        buf.append(in.substr(fed));
        fed = in.size();
        continue;
      }
      // The connection closed: as Beast's read loop, end_of_stream before any byte.
      if (p.got_some())
        p.put_eof(ec);
      else
        ec = http::error::end_of_stream;
      break;
    }
    if (ec) break;
  }
  Parsed out;
  if (ec == http::error::body_limit) out.body_limit = true;
  if (!ec && p.is_done()) {
    const auto& req = p.get();
    out.ok = true;
    out.method = std::string(req.method_string());
    out.target = std::string(req.target());
    out.authorization = std::string(req[http::field::authorization]);
    out.body = req.body();
    FUZZ_CHECK(out.body.size() <= kBodyLimit);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t split = in.empty() ? 0 : data[0] % (in.size() + 1);
  const Parsed whole = parse(in, in.size());
  const Parsed pieces = parse(in, split);
  FUZZ_CHECK(whole.ok == pieces.ok && whole.body_limit == pieces.body_limit);
  if (whole.ok) FUZZ_CHECK(whole == pieces);
  if (whole.ok && whole.method == "POST") {
    auto a = meshd::sensor::parse_falco_alert(whole.body);
    auto b = meshd::sensor::parse_falco_alert(whole.body);
    FUZZ_CHECK(a.has_value() == b.has_value());
  }
  return 0;
}
