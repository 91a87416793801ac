// Shoal netlink addon, core: request building, one rtnetlink socket per call, namespace switching, errors.
// Plain C++17 (no N-API here) so the same code runs on the JS thread and on libuv worker threads.
#pragma once

#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace shoal {

// An operation failed: errno (positive) and a complete, readable message.
struct NlError {
  int err;
  std::string msg;
  NlError(int e, std::string m) : err(e), msg(std::move(m)) {}
};

// Rendered by the caller: what the failing call was about, e.g. "create link vx-1f4".
std::string errText(int err);

// ------------------------------------------------------------------------------------------- namespaces

// Moves the calling thread into the network namespace at `path` for the guard's lifetime (nothing when
// path is empty). Going back cannot be allowed to fail silently: the thread would keep working in the wrong
// namespace, so a failed return aborts the process.
class NsGuard {
 public:
  explicit NsGuard(const std::string& path);
  ~NsGuard();
  NsGuard(const NsGuard&) = delete;
  NsGuard& operator=(const NsGuard&) = delete;

 private:
  int orig_ = -1;
};

// Opens a namespace file (O_RDONLY); throws "no such namespace PATH" when absent.
int openNs(const std::string& path);

// ---------------------------------------------------------------------------------------------- messages

class Msg {
 public:
  Msg(uint16_t type, uint16_t flags);
  template <class T>
  void put(const T& v) {
    putRaw(&v, sizeof v);
  }
  void putRaw(const void* p, size_t n);
  void attr(uint16_t type, const void* data, size_t len);
  void u8(uint16_t type, uint8_t v) { attr(type, &v, 1); }
  void u16(uint16_t type, uint16_t v) { attr(type, &v, 2); }
  void u32(uint16_t type, uint32_t v) { attr(type, &v, 4); }
  void s32(uint16_t type, int32_t v) { attr(type, &v, 4); }
  void str(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  size_t nest(uint16_t type);
  void end(size_t off);
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  std::vector<char>& buf() { return buf_; }
  template <class T>
  T* body() {
    return reinterpret_cast<T*>(buf_.data() + NLMSG_HDRLEN);
  }

 private:
  std::vector<char> buf_;
};

// ------------------------------------------------------------------------------------------------ socket

class Sock {
 public:
  explicit Sock(int proto = NETLINK_ROUTE);
  ~Sock();
  Sock(const Sock&) = delete;
  Sock& operator=(const Sock&) = delete;
  // Sends a request with NLM_F_ACK and waits for its ack; throws NlError(errno, what + ": " + reason).
  void ack(Msg& m, const std::string& what);
  // Like ack(), but returns the errno (0 on success) and the kernel's extended message, if any.
  int tryAck(Msg& m, std::string* ext);
  // Sends a request and returns the one reply message (e.g. RTM_GETLINK by name).
  std::vector<char> get(Msg& m, const std::string& what, int* errOut = nullptr);
  // NLM_F_DUMP: calls fn for every message of the reply (restarted if the kernel reports interruption).
  void dump(Msg& m, const std::string& what, const std::function<void(const nlmsghdr*)>& fn);
  // NLM_F_DUMP, streamed: fn sees each message as it arrives (nothing is collected, so memory stays one
  // receive buffer whatever the table's size) and an interrupted dump is not restarted. For tables whose
  // dumps are never consistent anyway (conntrack), where fn acts on each entry by its own identity.
  void dumpEach(Msg& m, const std::string& what, const std::function<void(const nlmsghdr*)>& fn);

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
  uint32_t portid_ = 0;
  std::vector<char> rbuf_;
  void send(Msg& m);
  // Receives one datagram of messages for seq; returns its length.
  size_t recvSome();
  // Receives a dump's reply (request `seq`): fn for every message up to NLMSG_DONE; errors thrown with
  // `what`. Returns whether the kernel flagged the dump as interrupted (NLM_F_DUMP_INTR).
  bool recvDump(uint32_t seq, const std::string& what, const std::function<void(const nlmsghdr*)>& fn);
};

// ---------------------------------------------------------------------------------------------- parsing

// Attributes in [data, data+len) indexed by type (types above max are ignored).
struct Attrs {
  std::vector<const nlattr*> tb;
  Attrs(const void* data, size_t len, int max);
  const nlattr* operator[](int t) const { return t < (int)tb.size() ? tb[t] : nullptr; }
  bool has(int t) const { return (*this)[t] != nullptr; }
  uint8_t u8(int t, uint8_t d = 0) const;
  uint16_t u16(int t, uint16_t d = 0) const;
  uint32_t u32(int t, uint32_t d = 0) const;
  int32_t s32(int t, int32_t d = 0) const;
  std::string str(int t) const;
  const void* data(int t) const;
  size_t len(int t) const;
};

// Dumps the objects of one kind: sends `getType` with the request header `req`, then calls
// fn(header, attributes) for every reply message of type `replyType`.
template <typename Hdr, typename Fn>
void dumpObjects(Sock& s, uint16_t getType, uint16_t replyType, const Hdr& req, int attrMax, const std::string& what, Fn fn) {
  Msg m(getType, 0);
  m.put(req);
  s.dump(m, what, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != replyType) return;
    const Hdr* p = static_cast<const Hdr*>(NLMSG_DATA(h));
    Attrs a(reinterpret_cast<const char*>(p) + NLMSG_ALIGN(sizeof *p), h->nlmsg_len - NLMSG_LENGTH(sizeof *p), attrMax);
    fn(p, a);
  });
}

inline const void* nlaData(const nlattr* a) { return reinterpret_cast<const char*>(a) + NLA_HDRLEN; }
inline size_t nlaLen(const nlattr* a) { return a->nla_len - NLA_HDRLEN; }

// ----------------------------------------------------------------------------------------------- helpers

std::string macToStr(const void* p, size_t n);
void parseMac(const std::string& s, uint8_t out[6]);
uint32_t parseIp4(const std::string& s, const char* what);  // network byte order
std::string ip4ToStr(const void* p);

}  // namespace shoal
