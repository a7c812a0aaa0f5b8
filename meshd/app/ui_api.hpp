// Routes of the metrics listener (ui_api.cpp): /metrics, /healthz and the read-only /ui.
#pragma once

#include <string>

#include "meshd/app/daemon.hpp"
#include "meshd/app/http_server.hpp"
#include "meshd/common/result.hpp"

namespace meshd::app {

// Reads metrics.ui_token_file when set (error "bad_config" naming the file, never its
// contents) and binds the routes to the daemon's state.
Result<HttpRoutes> make_http_routes(Daemon::Impl& d);

// The token in `path`: surrounding whitespace trimmed, >= 16 printable characters.
Result<std::string> load_ui_token(const std::string& path);

}  // namespace meshd::app
