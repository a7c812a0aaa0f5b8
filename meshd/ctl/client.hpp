// meshctl's side of the control API: one Unix-socket connection, length-prefixed
// ControlRequest / ControlResponse frames (proto/control.proto).
#pragma once

#include <functional>
#include <string>

#include "meshd/common/result.hpp"
#include "proto/control.pb.h"

namespace meshd::ctl {

// Sends `request` and returns the first response. Errors: `daemon_unreachable` (names the
// socket and suggests checking that meshd runs), `io_error`, `bad_response`, and the
// daemon's own error (its error_code and message) when the response has ok = false.
Result<v1::ControlResponse> call(const std::string& socket, const v1::ControlRequest& request);

// Streaming form: calls `on_response` for every response until one has more = false or the
// daemon closes the connection (events --follow runs until interrupted).
Result<void> stream(const std::string& socket, const v1::ControlRequest& request,
                    const std::function<void(const v1::ControlResponse&)>& on_response);

// "30s", "10m", "2h", "1d", "500ms" -> milliseconds. Error `bad_duration`.
Result<std::int64_t> parse_duration(const std::string& text);

}  // namespace meshd::ctl
