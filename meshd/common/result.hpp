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

// [[nodiscard]]: an ignored Result is an ignored error. Discard one on purpose with a
// `(void)` cast and a comment saying why nothing needs to happen.
template <class T>
class [[nodiscard]] Result : public std::expected<T, Error> {
 public:
  using std::expected<T, Error>::expected;
  // From the monadic operations (and_then, transform, ...), which return plain std::expected.
  Result(std::expected<T, Error> e) : std::expected<T, Error>(std::move(e)) {}
};

// Usage: `return fail("bad_cidr", "'" + text + "' is not a CIDR: prefix length > 32");`
inline std::unexpected<Error> fail(std::string code, std::string message) {
  return std::unexpected<Error>(Error{std::move(code), std::move(message)});
}

}  // namespace meshd
