// Netlink plumbing of the nftables enforcer: an RAII NETLINK_NETFILTER socket, a batch
// builder over libnftnl's paged batch, and helpers that encode and decode set elements.
// Internal to sensor/ (nft_enforcer.cpp is the only user).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"

struct mnl_socket;
struct nlmsghdr;
struct nftnl_batch;

namespace meshd::sensor::nft {

// nf_tables message types newer than Debian 12's UAPI headers (Linux 6.3+), probed at run
// time: DESTROY* is DEL* that does not fail when the object is already gone.
inline constexpr std::uint16_t kMsgDestroyTable = 26;
inline constexpr std::uint16_t kMsgDestroySetElem = 30;

// One nf_tables transaction: BATCH_BEGIN, command messages, BATCH_END, sent in a single
// sendmsg() and applied by the kernel atomically (all or nothing).
class Batch {
 public:
  explicit Batch(std::uint32_t first_seq);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // A command message; `describe` names it in error messages. The caller appends
  // attributes (at most kMaxMessage bytes in total) and then calls end_message().
  nlmsghdr* begin_message(std::uint16_t type, std::uint16_t flags, std::string describe);
  void end_message();
  // Closes the batch; the last command carries NLM_F_ACK so the kernel confirms it.
  void finish();

  std::size_t commands() const { return describe_.size(); }
  std::uint32_t first_seq() const { return first_seq_; }
  std::uint32_t last_seq() const { return seq_ - 1; }
  // Description of the command with this sequence number, or "" for begin/end.
  std::string describe(std::uint32_t seq) const;
  std::vector<iovec> iovecs() const;

  // Messages stay below this so a page can always hold one (the element list nest has a
  // 16-bit length, so element messages must stay under 64 KiB anyway).
  static constexpr std::size_t kMaxMessage = 60000;

 private:
  nftnl_batch* batch_;
  std::uint32_t first_seq_;
  std::uint32_t seq_;
  nlmsghdr* last_cmd_ = nullptr;  // valid until the next begin_message
  std::vector<std::string> describe_;
  bool finished_ = false;
};

// A set element as the kernel stores it for interval sets: a start element (the range's
// first address) or an end element (first address after the range, INTERVAL_END flag).
struct WireElement {
  Addr128 key = 0;
  bool end = false;
  std::optional<std::uint64_t> timeout_ms;     // start elements only
  std::optional<std::uint64_t> expiration_ms;  // remaining lifetime, from dumps
  std::string comment;                         // start elements only
  bool open_interval = false;                  // start element whose range runs to the last address
};

// Appends messages of `type` (NEWSETELEM/DELSETELEM/DESTROYSETELEM) carrying `elems` to the
// batch, as many elements per message as fit.
void append_elements(Batch& batch, std::uint16_t type, std::uint16_t flags, std::string_view table,
                     std::string_view set, int key_bytes, const std::vector<WireElement>& elems);

class Socket {
 public:
  static Result<Socket> open();
  Socket(Socket&&) noexcept;
  Socket& operator=(Socket&&) noexcept;
  ~Socket();

  std::uint32_t next_seq(std::uint32_t count = 1) {
    const std::uint32_t s = seq_;
    seq_ += count;
    return s;
  }

  // Sends the batch and collects the kernel's verdict. Errors: code "nft_permission"
  // (EPERM), "nft_drift" (ENOENT/EEXIST/ENOTEMPTY: the kernel's elements differ from what
  // we believed), "nft_failed" (anything else); the message names the failing command and
  // includes the kernel's extended-ack text when there is one.
  Result<void> send(Batch& batch);

  // A GET request (dump when `dump`) whose payload `build` fills; `on_msg` sees every reply
  // message. A kernel error (e.g. ENOENT) comes back as Error with code "nft_errno_<n>".
  Result<void> request(std::uint16_t type, bool dump, const std::function<void(nlmsghdr*)>& build,
                       const std::function<void(const nlmsghdr*)>& on_msg);

 private:
  explicit Socket(mnl_socket* nl);
  mnl_socket* nl_ = nullptr;
  std::uint32_t portid_ = 0;
  std::uint32_t seq_ = 0;
  std::size_t sndbuf_ = 0;
};

// Reads the elements of one set (GETSETELEM dump).
Result<std::vector<WireElement>> dump_elements(Socket& sock, std::string_view table,
                                               std::string_view set, int key_bytes);

}  // namespace meshd::sensor::nft
