#include "meshd/app/control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>

#include <spdlog/spdlog.h>

#include <chrono>

#include "meshd/common/errno_text.hpp"
#include "meshd/common/log_limit.hpp"
#include "proto/frame.hpp"

namespace meshd::app {
namespace {

using boost::asio::local::stream_protocol;
constexpr std::size_t kMaxRequest = 64 * 1024;
// A client has this long for each whole request (meshctl sends one at once); `events --follow`
// subscribers are exempt once subscribed. Past kMaxSessions, new connections are refused.
constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr std::uint64_t kMaxSessions = 256;

}  // namespace

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
  Impl(boost::asio::io_context& io, std::string p, ControlHooks h)
      : acceptor(io), path(std::move(p)), hooks(std::move(h)) {}
  stream_protocol::acceptor acceptor;
  std::string path;
  ControlHooks hooks;
  ControlStats stats;
  bool stopped = false;
  LogLimit log_limit;  // a flood of slow or surplus clients must not flood the log

  void accept();
  void warn(const std::string& what) {
    if (auto left_out = log_limit.admit())
      spdlog::warn("control socket {}: {}{}", path, what, LogLimit::and_more(*left_out));
  }
};

namespace {

// One client connection. Writes are queued so streamed events never interleave.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream_protocol::socket s, std::shared_ptr<ControlServer::Impl> server)
      : socket_(std::move(s)),
        server_(std::move(server)),
        decoder_(kMaxRequest),
        deadline_(socket_.get_executor()) {
    ++server_->stats.open;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      peer_ = "pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid);
    else
      peer_ = "unknown peer";
  }
  ~Session() {
    --server_->stats.open;
    if (subscription_ && server_->hooks.unsubscribe) server_->hooks.unsubscribe(subscription_);
  }
  void start() {
    arm();
    read();
  }

 private:
  // (Re)starts the clock for the next whole request; a subscriber only listens.
  void arm() {
    if (subscription_) {
      deadline_.cancel();
      return;
    }
    deadline_.expires_after(kRequestTimeout);
    deadline_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->subscription_ || !self->socket_.is_open()) return;
      ++self->server_->stats.timeouts;
      self->server_->warn("closed slow client " + self->peer_ + ": no whole request within " +
                          std::to_string(kRequestTimeout.count()) + " s");
      self->close();
    });
  }
  void read() {
    socket_.async_read_some(boost::asio::buffer(buf_),
                            [self = shared_from_this()](auto ec, std::size_t n) {
                              if (ec) return self->close();
                              self->decoder_.feed({self->buf_.data(), n});
                              self->drain();
                            });
  }
  void drain() {
    for (;;) {
      auto frame = decoder_.next();
      if (!frame) return reply_error("frame_too_large", frame.error().message, true);
      if (!*frame) break;
      ++server_->stats.requests;
      v1::ControlRequest req;
      if (!req.ParseFromArray((*frame)->data(), static_cast<int>((*frame)->size())) ||
          req.request_case() == v1::ControlRequest::REQUEST_NOT_SET) {
        reply_error("bad_request", "control request is not a ControlRequest", true);
        return;
      }
      send(server_->hooks.handle(req));
      arm();
      // A one-shot `events` answer ends the stream: meshctl reads it until the socket closes.
      if (req.has_events() && !req.events().follow()) close_after_write_ = true;
      if (req.has_events() && req.events().follow() && !subscription_ && server_->hooks.subscribe) {
        std::weak_ptr<Session> weak = shared_from_this();
        subscription_ = server_->hooks.subscribe([weak](const std::string& line) {
          if (auto self = weak.lock()) {
            v1::ControlResponse r;
            r.set_ok(true);
            r.set_more(true);
            r.set_json(line);
            self->send(r);
          }
        });
      }
    }
    read();
  }
  void reply_error(const std::string& code, const std::string& message, bool close_after) {
    ++server_->stats.bad_requests;
    v1::ControlResponse r;
    r.set_ok(false);
    r.set_error_code(code);
    r.set_error(message);
    send(r);
    close_after_write_ = close_after;
  }
  void send(const v1::ControlResponse& r) {
    bool idle = queue_.empty();
    queue_.push_back(proto::encode_frame(r));
    if (queue_.size() > 10000) return close();  // a follower that does not read
    if (idle) write();
  }
  void write() {
    boost::asio::async_write(socket_, boost::asio::buffer(queue_.front()),
                             [self = shared_from_this()](auto ec, std::size_t) {
                               if (ec) return self->close();
                               self->queue_.pop_front();
                               if (!self->queue_.empty())
                                 self->write();
                               else if (self->close_after_write_)
                                 self->close();
                             });
  }
  void close() {
    boost::system::error_code ignored;
    deadline_.cancel();
    socket_.close(ignored);
  }

  stream_protocol::socket socket_;
  std::shared_ptr<ControlServer::Impl> server_;
  proto::FrameDecoder decoder_;
  std::array<std::uint8_t, 4096> buf_{};
  std::deque<std::vector<std::uint8_t>> queue_;
  std::uint64_t subscription_ = 0;
  bool close_after_write_ = false;
  boost::asio::steady_timer deadline_;
  std::string peer_;  // "pid N uid U" (SO_PEERCRED), for log lines
};

}  // namespace

void ControlServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](auto ec, stream_protocol::socket s) {
    if (self->stopped) return;
    if (!ec) {
      ++self->stats.connections;
      if (self->stats.open >= kMaxSessions) {
        ++self->stats.refused;
        self->warn("refused a client: " + std::to_string(kMaxSessions) + " connections open");
        boost::system::error_code ignored;
        s.close(ignored);
      } else {
        std::make_shared<Session>(std::move(s), self)->start();
      }
    }
    self->accept();
  });
}

Result<std::unique_ptr<ControlServer>> ControlServer::create(boost::asio::io_context& io,
                                                             const std::string& path,
                                                             ControlHooks hooks) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto dir = fs::path(path).parent_path();
  if (!dir.empty()) fs::create_directories(dir, ec);
  if (fs::exists(path, ec)) {
    // A live daemon answers on the socket: never steal it. A stale file is removed.
    stream_protocol::socket probe(io);
    boost::system::error_code connect_ec;
    probe.connect(stream_protocol::endpoint(path), connect_ec);
    if (!connect_ec)
      return fail("control_socket", "control socket " + path + " is in use by a running daemon");
    fs::remove(path, ec);
  }
  auto impl = std::make_shared<Impl>(io, path, std::move(hooks));
  boost::system::error_code bec;
  impl->acceptor.open(stream_protocol(), bec);
  if (!bec) {
    // Created 0600 (umask), not chmod-ed afterwards: no window in which others can connect.
    const mode_t old_mask = ::umask(0177);
    impl->acceptor.bind(stream_protocol::endpoint(path), bec);
    ::umask(old_mask);
  }
  if (!bec) impl->acceptor.listen(64, bec);
  if (bec)
    return fail("control_socket", "cannot listen on control socket " + path + ": " + bec.message());
  if (::chmod(path.c_str(), 0600) != 0)  // belt and braces, e.g. a filesystem ignoring umask
    return fail("control_socket",
                "cannot set mode 0600 on control socket " + path + ": " + errno_text(errno));
  impl->accept();
  return std::unique_ptr<ControlServer>(new ControlServer(impl));
}

ControlServer::ControlServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlServer::~ControlServer() {
  stop();
}
const ControlStats& ControlServer::stats() const {
  return impl_->stats;
}

void ControlServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  std::error_code fs_ec;
  std::filesystem::remove(impl_->path, fs_ec);
}

}  // namespace meshd::app
