// The metrics listener's request parser and router (meshd/app/http_server.cpp route_request):
// GET /metrics, /healthz and the token-protected /ui. Input byte 0 bit 0: the request arrived
// at a loopback address; the rest is what the client sent (the server answers once it has
// the header's "\r\n\r\n").
// Properties: the answer is one of 200/400/401/404/405/503 with a body; /ui is served on a
// non-loopback address only to a request that presents credentials (a Bearer token or Basic
// auth) matching the token; the /metrics body is the exporter's text, unchanged.
#include <utility>  // before Asio (Boost 1.74)

#include <cctype>
#include <cstdint>
#include <string>

#include "meshd/app/http_server.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd::app;
  if (size < 1) return 0;
  const bool loopback = data[0] & 1;
  const std::string buf(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto header_end = buf.find("\r\n\r\n");
  if (header_end == std::string::npos) return 0;  // the server keeps reading (or 400s at 8 KiB)

  static const std::string kToken = "fuzz-token-0123456789";
  bool ui_called = false;
  HttpRoutes routes;
  routes.metrics = [] { return std::string("meshd_up 1\n"); };
  routes.unready_reason = [] { return std::string(); };
  routes.ui = [&](const HttpRequest& r) {
    ui_called = true;
    FUZZ_CHECK(r.path == "/ui" || r.path.starts_with("/ui/"));
    FUZZ_CHECK(r.method == "GET" || r.method == "HEAD");
    (void)query_param(r.query, "ip");
    HttpResponse out;
    out.body = "ui";
    return out;
  };
  routes.ui_token = kToken;
  const HttpResponse r = route_request(routes, buf, header_end, loopback);
  FUZZ_CHECK(r.code == 200 || r.code == 400 || r.code == 401 || r.code == 404 || r.code == 405 ||
             r.code == 503);
  FUZZ_CHECK(!r.body.empty());
  if (ui_called && !loopback) {
    std::string head = buf.substr(0, header_end);
    const bool bearer = head.find(kToken) != std::string::npos;
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    FUZZ_CHECK(bearer || head.find("basic") != std::string::npos);
  }
  if (r.code == 401) FUZZ_CHECK(!ui_called);
  if (r.code == 200 && !ui_called && r.body != "ok\n") FUZZ_CHECK(r.body == "meshd_up 1\n");
  return 0;
}
