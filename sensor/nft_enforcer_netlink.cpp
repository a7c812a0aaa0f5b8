#include "sensor/nft_enforcer_netlink.hpp"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "meshd/common/errno_text.hpp"

namespace meshd::sensor::nft {
namespace {

// Pages of 1 MiB keep the iovec count small for 100k-element batches; the overrun lets the
// last message of a page run past the page (libnftnl moves it to a fresh page).
constexpr std::uint32_t kPageSize = 1 << 20;
constexpr std::uint32_t kPageOverrun = 65536 + 4096;

struct ElemDeleter {
  void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
};
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct UdataDeleter {
  void operator()(nftnl_udata_buf* b) const { nftnl_udata_buf_free(b); }
};

void put_key(Addr128 key, int key_bytes, std::uint8_t* out) {
  for (int i = key_bytes - 1; i >= 0; --i) {
    out[i] = static_cast<std::uint8_t>(key & 0xff);
    key >>= 8;
  }
}

}  // namespace

Batch::Batch(std::uint32_t first_seq)
    : batch_(nftnl_batch_alloc(kPageSize, kPageOverrun)), first_seq_(first_seq), seq_(first_seq) {
  if (!batch_) throw std::bad_alloc();
  nftnl_batch_begin(static_cast<char*>(nftnl_batch_buffer(batch_)), seq_++);
  nftnl_batch_update(batch_);
}

Batch::~Batch() {
  nftnl_batch_free(batch_);
}

nlmsghdr* Batch::begin_message(std::uint16_t type, std::uint16_t flags, std::string describe) {
  describe_.push_back(std::move(describe));
  // Every command is acknowledged: the number of acks tells us the whole batch was seen.
  return nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(batch_)), type, NFPROTO_INET,
                               static_cast<std::uint16_t>(flags | NLM_F_ACK), seq_++);
}

void Batch::end_message() {
  if (nftnl_batch_update(batch_) < 0) throw std::bad_alloc();
}

void Batch::finish() {
  if (finished_) return;
  finished_ = true;
  nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(batch_)), seq_++);
  nftnl_batch_update(batch_);
}

std::string Batch::describe(std::uint32_t seq) const {
  // seq first_seq is BATCH_BEGIN; commands follow in order.
  if (seq <= first_seq_ || seq - first_seq_ - 1 >= describe_.size()) return "";
  return describe_[seq - first_seq_ - 1];
}

std::vector<iovec> Batch::iovecs() const {
  std::vector<iovec> iov(static_cast<std::size_t>(nftnl_batch_iovec_len(batch_)));
  nftnl_batch_iovec(batch_, iov.data(), static_cast<std::uint32_t>(iov.size()));
  return iov;
}

void append_elements(Batch& batch, std::uint16_t type, std::uint16_t flags, std::string_view table,
                     std::string_view set, int key_bytes, const std::vector<WireElement>& elems) {
  const std::string table_s(table), set_s(set);
  const std::string what = std::string(type == NFT_MSG_NEWSETELEM ? "add" : "delete") +
                           " elements of set " + set_s + " starting at element ";
  std::size_t i = 0;
  while (i < elems.size()) {
    nlmsghdr* nlh = batch.begin_message(type, flags, what + std::to_string(i));
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table_s.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set_s.c_str());
    nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    // One element needs well under 512 bytes (16-byte key, flags, timeout, <= 256 bytes of
    // user data), so stopping 512 bytes early never overflows the message or the nest.
    while (i < elems.size() && nlh->nlmsg_len + 512 < Batch::kMaxMessage) {
      const WireElement& w = elems[i++];
      std::unique_ptr<nftnl_set_elem, ElemDeleter> e(nftnl_set_elem_alloc());
      if (!e) throw std::bad_alloc();
      std::uint8_t key[16];
      put_key(w.key, key_bytes, key);
      nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, key, static_cast<std::uint32_t>(key_bytes));
      if (w.end) nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
      if (w.timeout_ms) nftnl_set_elem_set_u64(e.get(), NFTNL_SET_ELEM_TIMEOUT, *w.timeout_ms);
      if (!w.comment.empty() || w.open_interval) {
        std::unique_ptr<nftnl_udata_buf, UdataDeleter> ud(
            nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
        if (!ud) throw std::bad_alloc();
        if (!w.comment.empty())
          nftnl_udata_put_strz(ud.get(), NFTNL_UDATA_SET_ELEM_COMMENT, w.comment.c_str());
        // Tells `nft list` that this range runs to the end of the address space.
        if (w.open_interval)
          nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_ELEM_FLAGS, NFTNL_SET_ELEM_F_INTERVAL_OPEN);
        nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(ud.get()),
                           nftnl_udata_buf_len(ud.get()));
      }
      nlattr* item = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
      nftnl_set_elem_nlmsg_build_payload(nlh, e.get());
      mnl_attr_nest_end(nlh, item);
    }
    mnl_attr_nest_end(nlh, list);
    batch.end_message();
  }
}

Socket::Socket(mnl_socket* nl) : nl_(nl), portid_(mnl_socket_get_portid(nl)) {
  seq_ = static_cast<std::uint32_t>(::time(nullptr));
}

Socket::Socket(Socket&& o) noexcept
    : nl_(std::exchange(o.nl_, nullptr)), portid_(o.portid_), seq_(o.seq_), sndbuf_(o.sndbuf_) {}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    if (nl_) mnl_socket_close(nl_);
    nl_ = std::exchange(o.nl_, nullptr);
    portid_ = o.portid_;
    seq_ = o.seq_;
    sndbuf_ = o.sndbuf_;
  }
  return *this;
}

Socket::~Socket() {
  if (nl_) mnl_socket_close(nl_);
}

Result<Socket> Socket::open() {
  mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl)
    return fail("nft_socket", "cannot open a netfilter netlink socket: " + errno_text(errno));
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl);
    return fail("nft_socket", "cannot bind the netfilter netlink socket: " + errno_text(err));
  }
  int one = 1;
  // Errors without the echoed request (small acks), with the kernel's explanation text.
  mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
  mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
  return Socket(nl);
}

namespace {

// Grows a socket buffer; the FORCE variant (CAP_NET_ADMIN, which nftables needs anyway)
// ignores the rmem_max/wmem_max sysctls.
void grow_buffer(int fd, int force_opt, int opt, std::size_t bytes) {
  int v = static_cast<int>(std::min<std::size_t>(bytes, 1u << 30));
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) != 0)
    ::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
}

std::string extack_message(const nlmsghdr* nlh) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  std::size_t off = sizeof(nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += err->msg.nlmsg_len - sizeof(nlmsghdr);
  const auto* base = reinterpret_cast<const char*>(err);
  const std::size_t total = nlh->nlmsg_len - MNL_NLMSG_HDRLEN;
  std::string msg;
  for (std::size_t pos = off; pos + sizeof(nlattr) <= total;) {
    const auto* a = reinterpret_cast<const nlattr*>(base + pos);
    if (a->nla_len < sizeof(nlattr) || pos + a->nla_len > total) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
      msg.assign(reinterpret_cast<const char*>(a) + NLA_HDRLEN,
                 strnlen(reinterpret_cast<const char*>(a) + NLA_HDRLEN, a->nla_len - NLA_HDRLEN));
    pos += NLA_ALIGN(a->nla_len);
  }
  return msg;
}

}  // namespace

Result<void> Socket::send(Batch& batch) {
  batch.finish();
  const int fd = mnl_socket_get_fd(nl_);
  auto iov = batch.iovecs();
  std::size_t total = 0;
  for (const auto& v : iov) total += v.iov_len;
  // The kernel refuses a netlink message larger than the socket's send buffer.
  if (total + 4096 > sndbuf_) {
    sndbuf_ = total + 65536;
    grow_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf_);
  }
  // Every command is acknowledged and all acks are queued before sendmsg returns.
  grow_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF,
              std::max<std::size_t>(1 << 20, batch.commands() * 2048));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  msghdr msg{};
  msg.msg_name = &kernel;
  msg.msg_namelen = sizeof(kernel);
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  if (::sendmsg(fd, &msg, 0) < 0)
    return fail(errno == EPERM ? "nft_permission" : "nft_failed",
                "sending an nftables batch of " + std::to_string(total) +
                    " bytes failed: " + errno_text(errno));

  std::vector<char> buf(1 << 16);
  std::size_t acks = 0;
  std::optional<Error> first_error;
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (!first_error)
        first_error =
            Error{"nft_failed", "reading nftables acknowledgements failed: " + errno_text(errno)};
      break;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      ++acks;
      const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (e->error == 0 || first_error) continue;
      const int err = -e->error;
      std::string what = batch.describe(e->msg.nlmsg_seq);
      std::string ext = extack_message(nlh);
      std::string code = err == EPERM                                           ? "nft_permission"
                         : (err == ENOENT || err == EEXIST || err == ENOTEMPTY) ? "nft_drift"
                                                                                : "nft_failed";
      first_error =
          Error{std::move(code), "nftables rejected the batch" +
                                     (what.empty() ? std::string() : " at '" + what + "'") + ": " +
                                     errno_text(err) + (ext.empty() ? "" : " (" + ext + ")")};
    }
  }
  if (first_error) return std::unexpected(*first_error);
  if (acks < batch.commands())
    return fail("nft_failed", "nftables acknowledged " + std::to_string(acks) + " of " +
                                  std::to_string(batch.commands()) + " commands");
  return {};
}

namespace {
int trampoline(const nlmsghdr* nlh, void* data) {
  (*static_cast<const std::function<void(const nlmsghdr*)>*>(data))(nlh);
  return MNL_CB_OK;
}
}  // namespace

Result<void> Socket::request(std::uint16_t type, bool dump,
                             const std::function<void(nlmsghdr*)>& build,
                             const std::function<void(const nlmsghdr*)>& on_msg) {
  std::vector<char> out(MNL_SOCKET_BUFFER_SIZE);
  const std::uint32_t seq = next_seq();
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(out.data(), type, NFPROTO_INET,
                            static_cast<std::uint16_t>(dump ? NLM_F_DUMP : NLM_F_ACK), seq);
  build(nlh);
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0)
    return fail("nft_failed", "nftables request failed: " + errno_text(errno));
  std::vector<char> in(1 << 17);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, in.data(), in.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("nft_failed", "reading an nftables reply failed: " + errno_text(errno));
    }
    int ret = mnl_cb_run(in.data(), static_cast<std::size_t>(n), seq, portid_, trampoline,
                         const_cast<std::function<void(const nlmsghdr*)>*>(&on_msg));
    if (ret == MNL_CB_STOP) return {};
    if (ret < 0) {
      const int err = errno;
      return fail("nft_errno_" + std::to_string(err), errno_text(err));
    }
  }
}

Result<std::vector<WireElement>> dump_elements(Socket& sock, std::string_view table,
                                               std::string_view set, int key_bytes) {
  std::unique_ptr<nftnl_set, SetDeleter> req(nftnl_set_alloc());
  if (!req) throw std::bad_alloc();
  nftnl_set_set_str(req.get(), NFTNL_SET_TABLE, std::string(table).c_str());
  nftnl_set_set_str(req.get(), NFTNL_SET_NAME, std::string(set).c_str());
  std::vector<WireElement> out;
  std::optional<Error> parse_error;
  auto r = sock.request(
      NFT_MSG_GETSETELEM, true,
      [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, req.get()); },
      [&](const nlmsghdr* nlh) {
        std::unique_ptr<nftnl_set, SetDeleter> s(nftnl_set_alloc());
        if (nftnl_set_elems_nlmsg_parse(nlh, s.get()) < 0) {
          parse_error = Error{"nft_failed", "cannot parse the elements of set " + std::string(set)};
          return;
        }
        std::pair<std::vector<WireElement>*, int> ctx(&out, key_bytes);
        nftnl_set_elem_foreach(
            s.get(),
            [](nftnl_set_elem* e, void* data) -> int {
              auto* ctx = static_cast<std::pair<std::vector<WireElement>*, int>*>(data);
              WireElement w;
              std::uint32_t len = 0;
              const auto* key =
                  static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len));
              if (!key || static_cast<int>(len) != ctx->second)
                return 0;  // not ours: wrong key size
              for (std::uint32_t i = 0; i < len; ++i) w.key = (w.key << 8) | key[i];
              if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS))
                w.end = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END;
              if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_TIMEOUT))
                w.timeout_ms = nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_TIMEOUT);
              if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_EXPIRATION))
                w.expiration_ms = nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_EXPIRATION);
              std::uint32_t ulen = 0;
              const void* ud = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &ulen);
              if (ud && ulen) {
                nftnl_udata_parse(
                    ud, ulen,
                    [](const nftnl_udata* attr, void* out) -> int {
                      auto* el = static_cast<WireElement*>(out);
                      if (nftnl_udata_type(attr) == NFTNL_UDATA_SET_ELEM_COMMENT) {
                        const char* s = static_cast<const char*>(nftnl_udata_get(attr));
                        el->comment.assign(s, strnlen(s, nftnl_udata_len(attr)));
                      } else if (nftnl_udata_type(attr) == NFTNL_UDATA_SET_ELEM_FLAGS &&
                                 nftnl_udata_len(attr) == sizeof(std::uint32_t)) {
                        el->open_interval =
                            nftnl_udata_get_u32(attr) & NFTNL_SET_ELEM_F_INTERVAL_OPEN;
                      }
                      return 0;
                    },
                    &w);
              }
              ctx->first->push_back(std::move(w));
              return 0;
            },
            &ctx);
      });
  if (!r) return std::unexpected(r.error());
  if (parse_error) return std::unexpected(*parse_error);
  return out;
}

}  // namespace meshd::sensor::nft
