// strerror() for error messages, accepting both errno values and the negative error codes
// that libbpf and libmnl return.
#pragma once

#include <string>

namespace meshd {

std::string errno_text(int err);

}  // namespace meshd
