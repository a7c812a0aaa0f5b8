// The one error type of the project: recoverable errors are values, never exceptions.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace meshd {

// `code` is a short stable identifier (metric label, test assertion, e.g. "frame_too_large");
// `message` is one human sentence that names the input and the reason.
struct Error {
  std::string code;
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

// Usage: `return fail("bad_cidr", "'" + text + "' is not a CIDR: prefix length > 32");`
inline std::unexpected<Error> fail(std::string code, std::string message) {
  return std::unexpected<Error>(Error{std::move(code), std::move(message)});
}

}  // namespace meshd
