// Shoal netlink addon, core implementation (see nl.hh).
#include "nl.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace shoal {

// Every receive waits at most this long: a request can fail, never hang.
static const int kRecvTimeoutSec = 10;
static const size_t kRecvBuf = 256 * 1024;

std::string errText(int err) {
  const char* name = strerrorname_np(err);
  std::string s = strerror(err);
  if (name) s += std::string(" (") + name + ")";
  return s;
}

// ------------------------------------------------------------------------------------------- namespaces

int openNs(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) throw NlError(e, "no such namespace " + path);
    throw NlError(e, "cannot open namespace " + path + ": " + errText(e));
  }
  return fd;
}

NsGuard::NsGuard(const std::string& path) {
  if (path.empty()) return;
  int target = openNs(path);
  int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (orig < 0) {
    int e = errno;
    close(target);
    throw NlError(e, "cannot open this thread's network namespace: " + errText(e));
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(orig);
    if (e == EINVAL) throw NlError(e, "not a network namespace: " + path);
    throw NlError(e, "cannot enter namespace " + path + ": " + errText(e));
  }
  close(target);
  orig_ = orig;
}

NsGuard::~NsGuard() {
  if (orig_ < 0) return;
  if (setns(orig_, CLONE_NEWNET) < 0) {
    fprintf(stderr, "shoal_netlink: cannot return to the original network namespace: %s\n", strerror(errno));
    abort();
  }
  close(orig_);
}

// ---------------------------------------------------------------------------------------------- messages

Msg::Msg(uint16_t type, uint16_t flags) {
  buf_.assign(NLMSG_HDRLEN, 0);
  hdr()->nlmsg_type = type;
  hdr()->nlmsg_flags = NLM_F_REQUEST | flags;
  hdr()->nlmsg_len = NLMSG_HDRLEN;
}

void Msg::putRaw(const void* p, size_t n) {
  size_t off = buf_.size();
  buf_.resize(off + NLMSG_ALIGN(n), 0);
  memcpy(buf_.data() + off, p, n);
  hdr()->nlmsg_len = buf_.size();
}

void Msg::attr(uint16_t type, const void* data, size_t len) {
  size_t off = buf_.size();
  buf_.resize(off + NLA_ALIGN(NLA_HDRLEN + len), 0);
  nlattr* a = reinterpret_cast<nlattr*>(buf_.data() + off);
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  if (len) memcpy(buf_.data() + off + NLA_HDRLEN, data, len);
  hdr()->nlmsg_len = buf_.size();
}

size_t Msg::nest(uint16_t type) {
  size_t off = buf_.size();
  attr(type | NLA_F_NESTED, nullptr, 0);
  return off;
}

void Msg::end(size_t off) {
  nlattr* a = reinterpret_cast<nlattr*>(buf_.data() + off);
  a->nla_len = buf_.size() - off;
}

// ------------------------------------------------------------------------------------------------ socket

Sock::Sock(int proto) {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd_ < 0) {
    int e = errno;
    throw NlError(e, "cannot open a netlink socket: " + errText(e));
  }
  timeval tv{kRecvTimeoutSec, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  // Errors carry the kernel's own explanation and not a copy of our request.
  setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    close(fd_);
    throw NlError(e, "cannot bind a netlink socket: " + errText(e));
  }
  socklen_t sl = sizeof sa;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &sl);
  portid_ = sa.nl_pid;
  seq_ = 1;
  rbuf_.resize(kRecvBuf);
}

Sock::~Sock() {
  if (fd_ >= 0) close(fd_);
}

void Sock::send(Msg& m) {
  m.hdr()->nlmsg_seq = ++seq_;
  m.hdr()->nlmsg_pid = 0;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = sendto(fd_, m.buf().data(), m.buf().size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (n >= 0) return;
    if (errno == EINTR) continue;
    int e = errno;
    throw NlError(e, "netlink send failed: " + errText(e));
  }
}

size_t Sock::recvSome() {
  for (;;) {
    iovec iov{rbuf_.data(), rbuf_.size()};
    sockaddr_nl sa{};
    msghdr mh{};
    mh.msg_name = &sa;
    mh.msg_namelen = sizeof sa;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd_, &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK)
        throw NlError(ETIMEDOUT, "netlink: no answer from the kernel within " + std::to_string(kRecvTimeoutSec) + " s");
      throw NlError(e, "netlink receive failed: " + errText(e));
    }
    if (mh.msg_flags & MSG_TRUNC) throw NlError(EMSGSIZE, "netlink: reply truncated");
    if (sa.nl_pid != 0) continue;  // not from the kernel
    return static_cast<size_t>(n);
  }
}

// Extracts errno and the extended-ack message from an NLMSG_ERROR message.
static int parseErr(const nlmsghdr* h, std::string* ext) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EBADMSG;
  const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  if (ext && (h->nlmsg_flags & NLM_F_ACK_TLVS)) {
    size_t off = sizeof(nlmsgerr);
    if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
    size_t total = h->nlmsg_len - NLMSG_HDRLEN;
    if (off < total) {
      Attrs a(reinterpret_cast<const char*>(NLMSG_DATA(h)) + off, total - off, NLMSGERR_ATTR_MAX);
      if (a.has(NLMSGERR_ATTR_MSG)) *ext = a.str(NLMSGERR_ATTR_MSG);
    }
  }
  return -e->error;
}

int Sock::tryAck(Msg& m, std::string* ext) {
  m.hdr()->nlmsg_flags |= NLM_F_ACK;
  send(m);
  uint32_t seq = m.hdr()->nlmsg_seq;
  for (;;) {
    size_t n = recvSome();
    for (const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(rbuf_.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq || h->nlmsg_pid != portid_) continue;
      if (h->nlmsg_type == NLMSG_ERROR) return parseErr(h, ext);
      if (h->nlmsg_type == NLMSG_DONE) return 0;
    }
  }
}

void Sock::ack(Msg& m, const std::string& what) {
  std::string ext;
  int e = tryAck(m, &ext);
  if (e) throw NlError(e, what + ": " + (ext.empty() ? errText(e) : ext + " (" + (strerrorname_np(e) ?: "?") + ")"));
}

std::vector<char> Sock::get(Msg& m, const std::string& what, int* errOut) {
  m.hdr()->nlmsg_flags |= NLM_F_ACK;
  send(m);
  uint32_t seq = m.hdr()->nlmsg_seq;
  std::vector<char> out;
  for (;;) {
    size_t n = recvSome();
    for (const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(rbuf_.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq || h->nlmsg_pid != portid_) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        std::string ext;
        int e = parseErr(h, &ext);
        if (e == 0) return out;  // the ack after the reply
        if (errOut) {
          *errOut = e;
          return {};
        }
        throw NlError(e, what + ": " + (ext.empty() ? errText(e) : ext));
      }
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (out.empty()) out.assign(reinterpret_cast<const char*>(h), reinterpret_cast<const char*>(h) + h->nlmsg_len);
    }
  }
}

bool Sock::recvDump(uint32_t seq, const std::string& what, const std::function<void(const nlmsghdr*)>& fn) {
  bool intr = false;
  for (;;) {
    size_t n = recvSome();
    for (const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(rbuf_.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != seq || h->nlmsg_pid != portid_) continue;
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) intr = true;
      if (h->nlmsg_type == NLMSG_DONE) {
        int status = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) memcpy(&status, NLMSG_DATA(h), sizeof status);
        if (status < 0) throw NlError(-status, what + ": " + errText(-status));
        return intr;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        std::string ext;
        int e = parseErr(h, &ext);
        throw NlError(e, what + ": " + (ext.empty() ? errText(e) : ext));
      }
      fn(h);
    }
  }
}

void Sock::dump(Msg& m, const std::string& what, const std::function<void(const nlmsghdr*)>& fn) {
  for (int attempt = 0; attempt < 10; attempt++) {
    m.hdr()->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    send(m);
    std::vector<std::vector<char>> msgs;
    bool intr = recvDump(m.hdr()->nlmsg_seq, what, [&](const nlmsghdr* h) {
      msgs.emplace_back(reinterpret_cast<const char*>(h), reinterpret_cast<const char*>(h) + h->nlmsg_len);
    });
    if (intr) continue;  // the table changed while it was dumped: the result may be inconsistent
    for (auto& b : msgs) fn(reinterpret_cast<const nlmsghdr*>(b.data()));
    return;
  }
  throw NlError(EAGAIN, what + ": the table kept changing during the dump");
}

void Sock::dumpEach(Msg& m, const std::string& what, const std::function<void(const nlmsghdr*)>& fn) {
  m.hdr()->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  send(m);
  recvDump(m.hdr()->nlmsg_seq, what, fn);
}

// ---------------------------------------------------------------------------------------------- parsing

Attrs::Attrs(const void* data, size_t len, int max) : tb(max + 1, nullptr) {
  const char* p = static_cast<const char*>(data);
  while (len >= NLA_HDRLEN) {
    const nlattr* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < NLA_HDRLEN || a->nla_len > len) break;
    int t = a->nla_type & NLA_TYPE_MASK;
    if (t <= max) tb[t] = a;
    size_t step = NLA_ALIGN(a->nla_len);
    if (step >= len) break;
    p += step;
    len -= step;
  }
}

uint8_t Attrs::u8(int t, uint8_t d) const {
  const nlattr* a = (*this)[t];
  return a && nlaLen(a) >= 1 ? *static_cast<const uint8_t*>(nlaData(a)) : d;
}
uint16_t Attrs::u16(int t, uint16_t d) const {
  const nlattr* a = (*this)[t];
  uint16_t v = d;
  if (a && nlaLen(a) >= 2) memcpy(&v, nlaData(a), 2);
  return v;
}
uint32_t Attrs::u32(int t, uint32_t d) const {
  const nlattr* a = (*this)[t];
  uint32_t v = d;
  if (a && nlaLen(a) >= 4) memcpy(&v, nlaData(a), 4);
  return v;
}
int32_t Attrs::s32(int t, int32_t d) const {
  const nlattr* a = (*this)[t];
  int32_t v = d;
  if (a && nlaLen(a) >= 4) memcpy(&v, nlaData(a), 4);
  return v;
}
std::string Attrs::str(int t) const {
  const nlattr* a = (*this)[t];
  if (!a) return "";
  const char* s = static_cast<const char*>(nlaData(a));
  return std::string(s, strnlen(s, nlaLen(a)));
}
const void* Attrs::data(int t) const {
  const nlattr* a = (*this)[t];
  return a ? nlaData(a) : nullptr;
}
size_t Attrs::len(int t) const {
  const nlattr* a = (*this)[t];
  return a ? nlaLen(a) : 0;
}

// ----------------------------------------------------------------------------------------------- helpers

std::string macToStr(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  std::string s;
  char tmp[4];
  for (size_t i = 0; i < n; i++) {
    snprintf(tmp, sizeof tmp, i ? ":%02x" : "%02x", b[i]);
    s += tmp;
  }
  return s;
}

void parseMac(const std::string& s, uint8_t out[6]) {
  unsigned v[6];
  char extra;
  if (sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6 ||
      s.size() != 17)
    throw NlError(EINVAL, "invalid MAC address \"" + s + "\"");
  for (int i = 0; i < 6; i++) out[i] = static_cast<uint8_t>(v[i]);
}

uint32_t parseIp4(const std::string& s, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1)
    throw NlError(EINVAL, std::string("invalid IPv4 ") + what + " \"" + s + "\"");
  return a.s_addr;
}

std::string ip4ToStr(const void* p) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, p, buf, sizeof buf);
  return buf;
}

}  // namespace shoal
