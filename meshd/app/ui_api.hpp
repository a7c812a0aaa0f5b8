// Routes of the metrics listener (ui_api.cpp): /metrics, /healthz and the read-only /ui.
#pragma once

#include <string>
#include <string_view>

#include "meshd/app/daemon.hpp"
#include "meshd/app/http_server.hpp"
#include "meshd/common/result.hpp"

namespace meshd::app {

// Reads metrics.ui_token_file when set (error "bad_config" naming the file, never its
// contents) and binds the routes to the daemon's state.
Result<HttpRoutes> make_http_routes(Daemon::Impl& d);

// The token or shared secret in `path`: surrounding whitespace trimmed, >= 16 printable
// characters. Errors ("bad_config") name `key` and the file, never its contents.
Result<std::string> load_token_file(std::string_view key, const std::string& path);
inline Result<std::string> load_ui_token(const std::string& path) {
  return load_token_file("metrics.ui_token_file", path);
}

}  // namespace meshd::app
