#include "meshd/ctl/client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>

#include "meshd/common/errno_text.hpp"
#include "proto/frame.hpp"

namespace meshd::ctl {
namespace {

class Connection {
 public:
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Result<void> open(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path)
      return fail("io_error", "socket path too long: " + path);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return fail("io_error", std::string("socket: ") + errno_text(errno));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return fail("daemon_unreachable", "cannot reach meshd at " + path + ": " + errno_text(errno) +
                                            " (is meshd running? set --socket)");
    return {};
  }
  Result<void> send(const v1::ControlRequest& req) {
    auto frame = proto::encode_frame(req);
    std::size_t off = 0;
    while (off < frame.size()) {
      ssize_t n = ::write(fd_, frame.data() + off, frame.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail("io_error", std::string("writing to meshd: ") + errno_text(errno));
      off += static_cast<std::size_t>(n);
    }
    return {};
  }
  // Next response, or nullopt when the daemon closed the connection.
  Result<std::optional<v1::ControlResponse>> receive() {
    for (;;) {
      auto f = decoder_.next();
      if (!f) return fail("bad_response", f.error().message);
      if (*f) {
        v1::ControlResponse r;
        if (!r.ParseFromArray((*f)->data(), static_cast<int>((*f)->size())))
          return fail("bad_response", "meshd sent an undecodable response");
        return std::optional<v1::ControlResponse>(std::move(r));
      }
      std::uint8_t buf[16384];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail("io_error", std::string("reading from meshd: ") + errno_text(errno));
      if (n == 0) return std::optional<v1::ControlResponse>();
      decoder_.feed({buf, static_cast<std::size_t>(n)});
    }
  }

 private:
  int fd_ = -1;
  proto::FrameDecoder decoder_{64u << 20};
};

Result<v1::ControlResponse> checked(v1::ControlResponse r) {
  if (!r.ok()) return fail(r.error_code().empty() ? "daemon_error" : r.error_code(), r.error());
  return r;
}

}  // namespace

Result<v1::ControlResponse> call(const std::string& socket, const v1::ControlRequest& request) {
  Connection c;
  if (auto r = c.open(socket); !r) return std::unexpected(r.error());
  if (auto r = c.send(request); !r) return std::unexpected(r.error());
  auto resp = c.receive();
  if (!resp) return std::unexpected(resp.error());
  if (!*resp) return fail("bad_response", "meshd closed the connection without answering");
  return checked(std::move(**resp));
}

Result<void> stream(const std::string& socket, const v1::ControlRequest& request,
                    const std::function<void(const v1::ControlResponse&)>& on_response) {
  Connection c;
  if (auto r = c.open(socket); !r) return r;
  if (auto r = c.send(request); !r) return r;
  for (;;) {
    auto resp = c.receive();
    if (!resp) return std::unexpected(resp.error());
    if (!*resp) return {};
    auto ok = checked(std::move(**resp));
    if (!ok) return std::unexpected(ok.error());
    on_response(*ok);
  }
}

Result<std::int64_t> parse_duration(const std::string& text) {
  std::int64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  std::string unit(p, text.data() + text.size());
  const std::int64_t scale = unit == "ms"  ? 1
                             : unit == "s" ? 1000
                             : unit == "m" ? 60'000
                             : unit == "h" ? 3'600'000
                             : unit == "d" ? 86'400'000
                                           : 0;
  if (ec != std::errc{} || p == text.data() || value <= 0 || scale == 0)
    return fail("bad_duration", "'" + text + "' is not a duration like 30s, 10m, 2h or 1d");
  // Found by fuzz_meshctl_args: "9789315447832d" overflowed value * scale (signed, UB).
  if (value > std::numeric_limits<std::int64_t>::max() / scale)
    return fail("bad_duration", "'" + text + "' is too long a duration");
  return value * scale;
}

}  // namespace meshd::ctl
