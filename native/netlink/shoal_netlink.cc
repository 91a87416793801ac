// Shoal netlink addon: rtnetlink operations for the overlay data plane, exposed to JS with node-addon-api.
// Raw rtnetlink (no libnl). Every call takes a network namespace path as its first argument ('' = the
// calling thread's own): the thread enters it, opens its socket there, does its work and goes back.
// Synchronous (each call is microseconds), except deleteLinksAsync (veth deletion takes ~17 ms each: it
// runs on a libuv worker thread, which switches namespaces on its own). Every request that is not a dump
// sets NLM_F_ACK and every receive has a timeout, so no call waits forever. Errors are JS Errors with
// `.errno` (positive) and `.code` ('EEXIST').
// The TypeScript wrapper (overlay-net/netlink.ts) is the documented interface; this file is its engine.
#include <napi.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_arp.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/veth.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>

#include "nl.hh"

using namespace shoal;

namespace {

// ------------------------------------------------------------------------------------------ JS plumbing

Napi::Error toJs(Napi::Env env, const NlError& e) {
  Napi::Error err = Napi::Error::New(env, e.msg);
  err.Set("errno", Napi::Number::New(env, e.err));
  const char* code = strerrorname_np(e.err);
  err.Set("code", Napi::String::New(env, code ? code : "EUNKNOWN"));
  return err;
}

bool present(const Napi::Object& o, const char* k) {
  if (!o.Has(k)) return false;
  Napi::Value v = o.Get(k);
  return !v.IsUndefined() && !v.IsNull();
}

std::string getStr(const Napi::Object& o, const char* k, const std::string& d = "") {
  if (!present(o, k)) return d;
  Napi::Value v = o.Get(k);
  if (!v.IsString()) throw NlError(EINVAL, std::string("option ") + k + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

uint32_t getU32(const Napi::Object& o, const char* k, uint32_t d = 0) {
  if (!present(o, k)) return d;
  Napi::Value v = o.Get(k);
  if (!v.IsNumber()) throw NlError(EINVAL, std::string("option ") + k + " must be a number");
  double x = v.As<Napi::Number>().DoubleValue();
  if (x < 0 || x > 4294967295.0 || x != (double)(uint32_t)x)
    throw NlError(EINVAL, std::string("option ") + k + " out of range");
  return (uint32_t)x;
}

bool getBool(const Napi::Object& o, const char* k, bool d = false) {
  if (!present(o, k)) return d;
  return o.Get(k).ToBoolean().Value();
}

std::string argStr(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw NlError(EINVAL, std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// Argument i as an array of strings ("<what> must be an array" / "<what> must be strings" otherwise).
std::vector<std::string> argStrings(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsArray()) throw NlError(EINVAL, std::string(what) + " must be an array");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsString()) throw NlError(EINVAL, std::string(what) + " must be strings");
    out.push_back(v.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Object argObj(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) throw NlError(EINVAL, std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

// Runs fn and turns NlError into a JS exception.
template <class F>
Napi::Value wrap(const Napi::CallbackInfo& info, F fn) {
  try {
    return fn();
  } catch (const NlError& e) {
    throw toJs(info.Env(), e);
  }
}

// ------------------------------------------------------------------------------------------------ names

void checkIfName(const std::string& n) {
  if (n.empty() || n.size() >= IFNAMSIZ || n.find('/') != std::string::npos ||
      n.find_first_of(" \t\n:") != std::string::npos)
    throw NlError(EINVAL, "invalid link name \"" + n + "\" (1-15 characters, no '/', ':' or spaces)");
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

std::string fail(int e, const std::string& ext, const std::string& what) {
  if (!ext.empty()) return what + ": " + ext + " (" + (strerrorname_np(e) ?: "?") + ")";
  return what + ": " + errText(e);
}

// Index of the link called name in the socket's namespace; "no such link NAME" if there is none.
int ifindex(Sock& s, const std::string& name) {
  checkIfName(name);
  Msg m(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  m.put(ifi);
  m.str(IFLA_IFNAME, name);
  m.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  int err = 0;
  std::vector<char> r = s.get(m, "get link " + name, &err);
  if (err == ENODEV) throw NlError(ENODEV, "no such link " + name);
  if (err) throw NlError(err, "get link " + name + ": " + errText(err));
  if (r.size() < NLMSG_LENGTH(sizeof(ifinfomsg))) throw NlError(EBADMSG, "get link " + name + ": short reply");
  return static_cast<const ifinfomsg*>(NLMSG_DATA(reinterpret_cast<const nlmsghdr*>(r.data())))->ifi_index;
}

// --------------------------------------------------------------------------------------------- links

struct LinkRec {
  int index = 0;
  std::string name, kind, slaveKind, mac, alias, operstate;
  uint32_t master = 0, mtu = 0, flags = 0;
  int32_t link = 0, linkNetnsId = -1;
  bool hasVxlan = false;
  uint32_t vni = 0;
  std::string vxLocal;
  uint16_t vxPort = 0;
  bool vxLearning = false, vxProxy = false;
  int isolated = -1;
};

const char* operName(uint8_t s) {
  static const char* names[] = {"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"};
  return s < 7 ? names[s] : "unknown";
}

LinkRec parseLink(const nlmsghdr* h) {
  LinkRec r;
  const ifinfomsg* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
  r.index = ifi->ifi_index;
  r.flags = ifi->ifi_flags;
  Attrs a(reinterpret_cast<const char*>(ifi) + NLMSG_ALIGN(sizeof *ifi), h->nlmsg_len - NLMSG_LENGTH(sizeof *ifi),
          IFLA_MAX);
  r.name = a.str(IFLA_IFNAME);
  r.mtu = a.u32(IFLA_MTU);
  r.master = a.u32(IFLA_MASTER);
  r.link = a.s32(IFLA_LINK);
  if (a.has(IFLA_LINK_NETNSID)) r.linkNetnsId = a.s32(IFLA_LINK_NETNSID);
  if (a.has(IFLA_ADDRESS)) r.mac = macToStr(a.data(IFLA_ADDRESS), a.len(IFLA_ADDRESS));
  r.alias = a.str(IFLA_IFALIAS);
  r.operstate = operName(a.u8(IFLA_OPERSTATE));
  if (a.has(IFLA_LINKINFO)) {
    Attrs li(a.data(IFLA_LINKINFO), a.len(IFLA_LINKINFO), IFLA_INFO_MAX);
    r.kind = li.str(IFLA_INFO_KIND);
    r.slaveKind = li.str(IFLA_INFO_SLAVE_KIND);
    if (r.kind == "vxlan" && li.has(IFLA_INFO_DATA)) {
      Attrs d(li.data(IFLA_INFO_DATA), li.len(IFLA_INFO_DATA), IFLA_VXLAN_MAX);
      r.hasVxlan = true;
      r.vni = d.u32(IFLA_VXLAN_ID);
      if (d.len(IFLA_VXLAN_LOCAL) == 4) r.vxLocal = ip4ToStr(d.data(IFLA_VXLAN_LOCAL));
      r.vxPort = ntohs(d.u16(IFLA_VXLAN_PORT));
      r.vxLearning = d.u8(IFLA_VXLAN_LEARNING) != 0;
      r.vxProxy = d.u8(IFLA_VXLAN_PROXY) != 0;
    }
    if (r.slaveKind == "bridge" && li.has(IFLA_INFO_SLAVE_DATA)) {
      Attrs d(li.data(IFLA_INFO_SLAVE_DATA), li.len(IFLA_INFO_SLAVE_DATA), IFLA_BRPORT_MAX);
      if (d.has(IFLA_BRPORT_ISOLATED)) r.isolated = d.u8(IFLA_BRPORT_ISOLATED);
    }
  }
  return r;
}

Napi::Object linkToJs(Napi::Env env, const LinkRec& r, const std::map<int, std::string>* names) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", r.index);
  o.Set("name", r.name);
  o.Set("kind", r.kind.empty() ? env.Null() : Napi::String::New(env, r.kind));
  o.Set("slaveKind", r.slaveKind.empty() ? env.Null() : Napi::String::New(env, r.slaveKind));
  o.Set("masterIndex", r.master ? Napi::Number::New(env, r.master) : env.Null());
  Napi::Value masterName = env.Null();
  if (r.master && names) {
    auto it = names->find(static_cast<int>(r.master));
    if (it != names->end()) masterName = Napi::String::New(env, it->second);
  }
  o.Set("master", masterName);
  o.Set("mtu", r.mtu);
  o.Set("up", (r.flags & IFF_UP) != 0);
  o.Set("lowerUp", (r.flags & IFF_LOWER_UP) != 0);
  o.Set("operstate", r.operstate);
  o.Set("mac", r.mac);
  o.Set("alias", r.alias.empty() ? env.Null() : Napi::String::New(env, r.alias));
  o.Set("linkIndex", r.link ? Napi::Number::New(env, r.link) : env.Null());
  o.Set("linkNetnsId", r.linkNetnsId >= 0 ? Napi::Number::New(env, r.linkNetnsId) : env.Null());
  if (r.hasVxlan) {
    Napi::Object v = Napi::Object::New(env);
    v.Set("vni", r.vni);
    v.Set("local", r.vxLocal.empty() ? env.Null() : Napi::String::New(env, r.vxLocal));
    v.Set("port", r.vxPort);
    v.Set("learning", r.vxLearning);
    v.Set("proxy", r.vxProxy);
    o.Set("vxlan", v);
  } else {
    o.Set("vxlan", env.Null());
  }
  o.Set("isolated", r.isolated < 0 ? env.Null() : Napi::Boolean::New(env, r.isolated != 0));
  return o;
}

std::vector<LinkRec> dumpLinks(Sock& s) {
  Msg m(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.put(ifi);
  m.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  std::vector<LinkRec> out;
  s.dump(m, "list links", [&](const nlmsghdr* h) {
    if (h->nlmsg_type == RTM_NEWLINK) out.push_back(parseLink(h));
  });
  return out;
}

Napi::Value LinkList(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::vector<LinkRec> links;
    {
      NsGuard g(ns);
      Sock s;
      links = dumpLinks(s);
    }
    std::map<int, std::string> names;
    for (auto& l : links) names[l.index] = l.name;
    Napi::Array arr = Napi::Array::New(info.Env(), links.size());
    for (size_t i = 0; i < links.size(); i++) arr.Set(i, linkToJs(info.Env(), links[i], &names));
    return arr;
  });
}

Napi::Value LinkGet(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::string name = argStr(info, 1, "name");
    checkIfName(name);
    LinkRec rec;
    std::string masterName;
    {
      NsGuard g(ns);
      Sock s;
      Msg m(RTM_GETLINK, 0);
      ifinfomsg ifi{};
      m.put(ifi);
      m.str(IFLA_IFNAME, name);
      m.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
      int err = 0;
      std::vector<char> r = s.get(m, "get link " + name, &err);
      if (err == ENODEV) return info.Env().Null();
      if (err) throw NlError(err, "get link " + name + ": " + errText(err));
      rec = parseLink(reinterpret_cast<const nlmsghdr*>(r.data()));
      if (rec.master) {
        Msg mm(RTM_GETLINK, 0);
        ifinfomsg mi{};
        mi.ifi_index = rec.master;
        mm.put(mi);
        mm.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        std::vector<char> mr = s.get(mm, "get link", &err);
        if (!err && !mr.empty()) masterName = parseLink(reinterpret_cast<const nlmsghdr*>(mr.data())).name;
      }
    }
    std::map<int, std::string> names;
    if (!masterName.empty()) names[rec.master] = masterName;
    return linkToJs(info.Env(), rec, &names);
  });
}

// linkAdd(ns, spec): spec = { name, kind, mtu?, mac?, up?, master?, targetNetns?, vxlan?, veth?, bridge? }
Napi::Value LinkAdd(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    Napi::Object spec = argObj(info, 1, "link spec");
    std::string name = getStr(spec, "name");
    std::string kind = getStr(spec, "kind");
    checkIfName(name);
    if (kind.empty()) throw NlError(EINVAL, "create link " + name + ": kind missing");
    std::string target = getStr(spec, "targetNetns");
    std::string master = getStr(spec, "master");
    if (!target.empty() && !master.empty())
      throw NlError(EINVAL, "create link " + name + ": master and targetNetns cannot be combined");
    uint8_t mac[6];
    bool hasMac = present(spec, "mac");
    if (hasMac) parseMac(getStr(spec, "mac"), mac);

    Napi::Object vx, veth, br;
    if (kind == "vxlan") {
      if (!present(spec, "vxlan")) throw NlError(EINVAL, "create link " + name + ": vxlan options missing");
      vx = spec.Get("vxlan").As<Napi::Object>();
    } else if (kind == "veth") {
      if (!present(spec, "veth")) throw NlError(EINVAL, "create link " + name + ": veth options missing");
      veth = spec.Get("veth").As<Napi::Object>();
    } else if (kind == "bridge") {
      if (present(spec, "bridge")) br = spec.Get("bridge").As<Napi::Object>();
    } else {
      throw NlError(EINVAL, "create link " + name + ": unsupported kind " + kind);
    }
    std::string peer, peerNs;
    uint8_t peerMac[6];
    bool hasPeerMac = false;
    if (kind == "veth") {
      peer = getStr(veth, "peer");
      checkIfName(peer);
      peerNs = getStr(veth, "peerNetns");
      hasPeerMac = present(veth, "peerMac");
      if (hasPeerMac) parseMac(getStr(veth, "peerMac"), peerMac);
    }
    uint32_t local = 0;
    if (kind == "vxlan" && present(vx, "local")) local = parseIp4(getStr(vx, "local"), "local address");

    NsGuard g(ns);
    Sock s;
    Fd targetFd, peerFd;
    if (!target.empty()) targetFd = Fd(openNs(target));
    if (!peerNs.empty()) peerFd = Fd(openNs(peerNs));

    Msg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    if (getBool(spec, "up")) ifi.ifi_flags = ifi.ifi_change = IFF_UP;
    m.put(ifi);
    m.str(IFLA_IFNAME, name);
    if (present(spec, "mtu")) m.u32(IFLA_MTU, getU32(spec, "mtu"));
    if (hasMac) m.attr(IFLA_ADDRESS, mac, 6);
    if (!master.empty()) m.u32(IFLA_MASTER, ifindex(s, master));
    if (targetFd.get() >= 0) m.u32(IFLA_NET_NS_FD, targetFd.get());
    size_t li = m.nest(IFLA_LINKINFO);
    m.str(IFLA_INFO_KIND, kind);
    if (kind == "vxlan") {
      size_t d = m.nest(IFLA_INFO_DATA);
      m.u32(IFLA_VXLAN_ID, getU32(vx, "vni"));
      if (local) m.attr(IFLA_VXLAN_LOCAL, &local, 4);
      m.u16(IFLA_VXLAN_PORT, htons(static_cast<uint16_t>(getU32(vx, "port", 4789))));
      m.u8(IFLA_VXLAN_LEARNING, getBool(vx, "learning", false) ? 1 : 0);
      m.u8(IFLA_VXLAN_PROXY, getBool(vx, "proxy", false) ? 1 : 0);
      if (present(vx, "ttl")) m.u8(IFLA_VXLAN_TTL, static_cast<uint8_t>(getU32(vx, "ttl")));
      m.end(d);
    } else if (kind == "bridge") {
      size_t d = m.nest(IFLA_INFO_DATA);
      m.u32(IFLA_BR_STP_STATE, 0);
      m.u32(IFLA_BR_FORWARD_DELAY, 0);
      if (!br.IsEmpty() && present(br, "mcastSnooping")) m.u8(IFLA_BR_MCAST_SNOOPING, getBool(br, "mcastSnooping") ? 1 : 0);
      m.end(d);
    } else if (kind == "veth") {
      size_t d = m.nest(IFLA_INFO_DATA);
      size_t p = m.nest(VETH_INFO_PEER);
      // No IFF_UP for the peer here: the kernel configures it before the pair is linked, and opening a
      // veth without its peer fails (ENOTCONN). The wrapper brings it up with a second request.
      ifinfomsg pi{};
      pi.ifi_family = AF_UNSPEC;
      m.put(pi);
      m.str(IFLA_IFNAME, peer);
      if (present(veth, "peerMtu") || present(spec, "mtu"))
        m.u32(IFLA_MTU, present(veth, "peerMtu") ? getU32(veth, "peerMtu") : getU32(spec, "mtu"));
      if (hasPeerMac) m.attr(IFLA_ADDRESS, peerMac, 6);
      if (peerFd.get() >= 0) m.u32(IFLA_NET_NS_FD, peerFd.get());
      m.end(p);
      m.end(d);
    }
    m.end(li);
    std::string ext;
    int e = s.tryAck(m, &ext);
    if (e == EEXIST && ext.empty()) {
      if (kind == "veth") throw NlError(e, "link " + name + " or its peer " + peer + " exists");
      throw NlError(e, "link " + name + " exists" + (target.empty() ? "" : " in " + target));
    }
    if (e) throw NlError(e, fail(e, ext, "create " + kind + " link " + name));
    return info.Env().Undefined();
  });
}

// linkSet(ns, name, change): change = { name?, mtu?, up?, mac?, master? (''|null = none), alias?,
// targetNetns?, isolated?, learning? }
Napi::Value LinkSet(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::string name = argStr(info, 1, "name");
    Napi::Object ch = argObj(info, 2, "change");
    std::string newName = getStr(ch, "name");
    if (!newName.empty()) checkIfName(newName);
    std::string target = getStr(ch, "targetNetns");
    uint8_t mac[6];
    bool hasMac = present(ch, "mac");
    if (hasMac) parseMac(getStr(ch, "mac"), mac);
    bool hasMaster = ch.Has("master") && !ch.Get("master").IsUndefined();
    std::string master = hasMaster && !ch.Get("master").IsNull() ? getStr(ch, "master") : "";
    bool brport = present(ch, "isolated") || present(ch, "learning");

    NsGuard g(ns);
    Sock s;
    int idx = ifindex(s, name);
    Fd targetFd;
    if (!target.empty()) targetFd = Fd(openNs(target));
    Msg m(RTM_NEWLINK, 0);
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = idx;
    if (present(ch, "up")) {
      ifi.ifi_change = IFF_UP;
      ifi.ifi_flags = getBool(ch, "up") ? IFF_UP : 0;
    }
    m.put(ifi);
    if (!newName.empty()) m.str(IFLA_IFNAME, newName);
    if (present(ch, "mtu")) m.u32(IFLA_MTU, getU32(ch, "mtu"));
    if (hasMac) m.attr(IFLA_ADDRESS, mac, 6);
    if (hasMaster) m.u32(IFLA_MASTER, master.empty() ? 0 : ifindex(s, master));
    if (present(ch, "alias")) m.str(IFLA_IFALIAS, getStr(ch, "alias"));
    if (targetFd.get() >= 0) m.u32(IFLA_NET_NS_FD, targetFd.get());
    if (brport) {
      size_t li = m.nest(IFLA_LINKINFO);
      m.str(IFLA_INFO_SLAVE_KIND, "bridge");
      size_t d = m.nest(IFLA_INFO_SLAVE_DATA);
      if (present(ch, "isolated")) m.u8(IFLA_BRPORT_ISOLATED, getBool(ch, "isolated") ? 1 : 0);
      if (present(ch, "learning")) m.u8(IFLA_BRPORT_LEARNING, getBool(ch, "learning") ? 1 : 0);
      m.end(d);
      m.end(li);
    }
    std::string ext;
    int e = s.tryAck(m, &ext);
    if (e == EEXIST && ext.empty()) {
      std::string n = newName.empty() ? name : newName;
      throw NlError(e, "link " + n + " exists" + (target.empty() ? "" : " in " + target));
    }
    if (e) throw NlError(e, fail(e, ext, "set link " + name));
    return info.Env().Undefined();
  });
}

void delLink(Sock& s, const std::string& name) {
  checkIfName(name);
  Msg m(RTM_DELLINK, 0);
  ifinfomsg ifi{};
  m.put(ifi);
  m.str(IFLA_IFNAME, name);
  std::string ext;
  int e = s.tryAck(m, &ext);
  if (e == ENODEV) throw NlError(e, "no such link " + name);
  if (e) throw NlError(e, fail(e, ext, "delete link " + name));
}

Napi::Value LinkDel(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::string name = argStr(info, 1, "name");
    NsGuard g(ns);
    Sock s;
    delLink(s, name);
    return info.Env().Undefined();
  });
}

// Deletes links on a libuv worker thread (veth deletion waits for an RCU grace period: ~17 ms each).
// Resolves with [{ name, errno?, message? }] (a link already gone counts as deleted).
class DeleteLinksWorker : public Napi::AsyncWorker {
 public:
  DeleteLinksWorker(Napi::Env env, std::string ns, std::vector<std::string> names)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), ns_(std::move(ns)),
        names_(std::move(names)), errs_(names_.size(), 0), msgs_(names_.size()) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      NsGuard g(ns_);
      Sock s;
      for (size_t i = 0; i < names_.size(); i++) {
        try {
          delLink(s, names_[i]);
        } catch (const NlError& e) {
          if (e.err != ENODEV) {
            errs_[i] = e.err;
            msgs_[i] = e.msg;
          }
        }
      }
    } catch (const NlError& e) {
      for (size_t i = 0; i < names_.size(); i++) {
        errs_[i] = e.err;
        msgs_[i] = e.msg;
      }
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array arr = Napi::Array::New(env, names_.size());
    for (size_t i = 0; i < names_.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", names_[i]);
      if (errs_[i]) {
        o.Set("errno", errs_[i]);
        const char* code = strerrorname_np(errs_[i]);
        o.Set("code", code ? code : "EUNKNOWN");
        o.Set("message", msgs_[i]);
      }
      arr.Set(i, o);
    }
    deferred_.Resolve(arr);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string ns_;
  std::vector<std::string> names_;
  std::vector<int> errs_;
  std::vector<std::string> msgs_;
};

Napi::Value DeleteLinksAsync(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::vector<std::string> names = argStrings(info, 1, "names");
    auto* w = new DeleteLinksWorker(info.Env(), ns, std::move(names));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// Reads a small /proc value (a sysctl) as the calling thread's namespace sees it, trailing newline and
// spaces dropped. Returns 0 or the errno of the open or read.
int readProcValue(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int e = errno;
  close(fd);
  if (n < 0) return e;
  out->assign(buf, n);
  while (!out->empty() && (out->back() == '\n' || out->back() == ' ')) out->pop_back();
  return 0;
}

// ------------------------------------------------------------------------------------------- conntrack

// Deletes the namespace's IPv4 conntrack entries whose reply would come from a backend a load balancer
// dropped (overlay-net/stale-flows.ts says why): those of `unreplied` only while they have seen no reply
// (an unreplied entry keeps a client's retransmitted or port-reusing SYN on the old backend for up to
// 120 s; a replied one may be a draining backend's live connection), those of `all` whatever their state
// (the task is dead: its clients' next packets are balanced afresh and answered with a reset). Runs on a libuv worker thread: a dump walks the kernel's whole conntrack
// hash, shared by every namespace (10.6 ms p50 at 262,144 buckets here, even for an empty namespace), so a
// namespace whose own count (nf_conntrack_count, per namespace) is 0 is not dumped at all. The dump is
// streamed and each match deleted at once on a second socket, by its original tuple, its id (so an
// entry that was replaced meanwhile is left alone) and its zone. Resolves with { scanned, deleted };
// entries that went away by themselves are not errors.
class CtDropWorker : public Napi::AsyncWorker {
 public:
  CtDropWorker(Napi::Env env, std::string ns, std::set<uint32_t> unreplied, std::set<uint32_t> all)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), ns_(std::move(ns)),
        unreplied_(std::move(unreplied)), all_(std::move(all)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  // The calling thread's namespace's entry count; -1 when it cannot be read (then the dump decides).
  static long conntrackCount() {
    std::string v;
    if (readProcValue("/proc/sys/net/netfilter/nf_conntrack_count", &v) != 0 || v.empty()) return -1;
    return strtol(v.c_str(), nullptr, 10);
  }

  void Execute() override {
    try {
      NsGuard g(ns_);
      if (conntrackCount() == 0) return;
      Sock dump(NETLINK_NETFILTER);
      Sock del(NETLINK_NETFILTER);
      const uint16_t ctNew = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
      nfgenmsg nf{};
      nf.nfgen_family = AF_INET;
      nf.version = NFNETLINK_V0;
      Msg m((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, 0);
      m.put(nf);
      dump.dumpEach(m, "list conntrack entries", [&](const nlmsghdr* h) {
        if (h->nlmsg_type != ctNew || h->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return;
        scanned_++;
        const char* body = static_cast<const char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(nfgenmsg));
        Attrs a(body, h->nlmsg_len - NLMSG_LENGTH(sizeof(nfgenmsg)), CTA_MAX);
        const bool replied = ntohl(a.u32(CTA_STATUS)) & IPS_SEEN_REPLY;
        const nlattr* orig = a[CTA_TUPLE_ORIG];
        const nlattr* reply = a[CTA_TUPLE_REPLY];
        if (!orig || !reply) return;
        Attrs rt(nlaData(reply), nlaLen(reply), CTA_TUPLE_MAX);
        const nlattr* ip = rt[CTA_TUPLE_IP];
        if (!ip) return;
        Attrs ipa(nlaData(ip), nlaLen(ip), CTA_IP_MAX);
        if (ipa.len(CTA_IP_V4_SRC) != 4) return;
        uint32_t src;
        memcpy(&src, ipa.data(CTA_IP_V4_SRC), 4);
        if (!all_.count(src) && (replied || !unreplied_.count(src))) return;
        Msg d((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, 0);
        d.put(nf);
        d.putRaw(orig, orig->nla_len);
        if (a.len(CTA_ID) == 4) d.attr(CTA_ID, a.data(CTA_ID), 4);
        if (a.len(CTA_ZONE) == 2) d.attr(CTA_ZONE, a.data(CTA_ZONE), 2);
        std::string ext;
        int e = del.tryAck(d, &ext);
        if (e == 0) deleted_++;
        else if (e != ENOENT) throw NlError(e, fail(e, ext, "delete a conntrack entry"));
      });
    } catch (const NlError& e) {
      err_ = e.err;
      SetError(e.msg);
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("scanned", Napi::Number::New(env, scanned_));
    o.Set("deleted", Napi::Number::New(env, deleted_));
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = e;
    err.Set("errno", Napi::Number::New(Env(), err_));
    const char* code = strerrorname_np(err_);
    err.Set("code", Napi::String::New(Env(), code ? code : "EUNKNOWN"));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string ns_;
  std::set<uint32_t> unreplied_;
  std::set<uint32_t> all_;
  double scanned_ = 0;
  double deleted_ = 0;
  int err_ = 0;
};

// ctDropAsync(ns, unrepliedAddrs, allAddrs): see CtDropWorker.
Napi::Value CtDropAsync(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::set<uint32_t> unreplied, all;
    for (const std::string& a : argStrings(info, 1, "unreplied")) unreplied.insert(parseIp4(a, "address"));
    for (const std::string& a : argStrings(info, 2, "all")) all.insert(parseIp4(a, "address"));
    auto* w = new CtDropWorker(info.Env(), ns, std::move(unreplied), std::move(all));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// ------------------------------------------------------------------------------------------- addresses

Napi::Value AddrChange(const Napi::CallbackInfo& info, bool add) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::string dev = argStr(info, 1, "dev");
    std::string ip = argStr(info, 2, "address");
    uint32_t plen = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 32;
    bool replace = info.Length() > 4 && info[4].ToBoolean().Value();
    if (plen > 32) throw NlError(EINVAL, "invalid prefix length " + std::to_string(plen));
    uint32_t a = parseIp4(ip, "address");
    std::string what = ip + "/" + std::to_string(plen);
    NsGuard g(ns);
    Sock s;
    int idx = ifindex(s, dev);
    Msg m(add ? RTM_NEWADDR : RTM_DELADDR, add ? (NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL)) : 0);
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_INET;
    ifa.ifa_prefixlen = plen;
    ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    ifa.ifa_index = idx;
    m.put(ifa);
    m.attr(IFA_LOCAL, &a, 4);
    m.attr(IFA_ADDRESS, &a, 4);
    std::string ext;
    int e = s.tryAck(m, &ext);
    if (add && e == EEXIST) throw NlError(e, "address " + what + " exists on " + dev);
    if (!add && e == EADDRNOTAVAIL) throw NlError(e, "no address " + what + " on " + dev);
    if (e) throw NlError(e, fail(e, ext, (add ? "add address " : "delete address ") + what + " on " + dev));
    return info.Env().Undefined();
  });
}
Napi::Value AddrAdd(const Napi::CallbackInfo& info) { return AddrChange(info, true); }
Napi::Value AddrDel(const Napi::CallbackInfo& info) { return AddrChange(info, false); }

Napi::Value AddrList(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    struct Rec {
      int index;
      std::string ip, label;
      int plen, scope;
      bool secondary;
    };
    std::vector<Rec> out;
    {
      NsGuard g(ns);
      Sock s;
      ifaddrmsg ifa{};
      ifa.ifa_family = AF_INET;
      dumpObjects(s, RTM_GETADDR, RTM_NEWADDR, ifa, IFA_MAX, "list addresses", [&](const ifaddrmsg* p, const Attrs& a) {
        if (p->ifa_family != AF_INET) return;
        int t = a.has(IFA_LOCAL) ? IFA_LOCAL : IFA_ADDRESS;
        if (a.len(t) != 4) return;
        uint32_t fl = a.has(IFA_FLAGS) ? a.u32(IFA_FLAGS) : p->ifa_flags;
        out.push_back({(int)p->ifa_index, ip4ToStr(a.data(t)), a.str(IFA_LABEL), p->ifa_prefixlen, p->ifa_scope,
                       (fl & IFA_F_SECONDARY) != 0});
      });
    }
    Napi::Env env = info.Env();
    Napi::Array arr = Napi::Array::New(env, out.size());
    for (size_t i = 0; i < out.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", out[i].index);
      o.Set("address", out[i].ip);
      o.Set("prefixLen", out[i].plen);
      o.Set("label", out[i].label);
      o.Set("scope", out[i].scope);
      o.Set("secondary", out[i].secondary);
      arr.Set(i, o);
    }
    return arr;
  });
}

// ---------------------------------------------------------------------------------------------- routes

// route = { dst, dstLen, gateway?, dev?, metric?, onlink?, src?, table? }
Napi::Value RouteChange(const Napi::CallbackInfo& info, int op) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    Napi::Object r = argObj(info, 1, "route");
    std::string dstS = getStr(r, "dst", "0.0.0.0");
    uint32_t dlen = getU32(r, "dstLen", 0);
    if (dlen > 32) throw NlError(EINVAL, "invalid prefix length " + std::to_string(dlen));
    uint32_t dst = parseIp4(dstS, "destination");
    std::string gwS = getStr(r, "gateway");
    uint32_t gw = gwS.empty() ? 0 : parseIp4(gwS, "gateway");
    std::string src = getStr(r, "src");
    uint32_t srcA = src.empty() ? 0 : parseIp4(src, "source");
    std::string dev = getStr(r, "dev");
    uint32_t table = getU32(r, "table", RT_TABLE_MAIN);
    std::string what = dlen == 0 ? std::string("default") : dstS + "/" + std::to_string(dlen);
    bool replace = op == 2;
    bool add = op != 0;

    NsGuard g(ns);
    Sock s;
    int oif = dev.empty() ? 0 : ifindex(s, dev);
    Msg m(add ? RTM_NEWROUTE : RTM_DELROUTE, add ? (NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL)) : 0);
    rtmsg rt{};
    rt.rtm_family = AF_INET;
    rt.rtm_dst_len = dlen;
    rt.rtm_table = table < 256 ? table : RT_TABLE_UNSPEC;
    if (add) {
      rt.rtm_protocol = RTPROT_BOOT;
      rt.rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
      rt.rtm_type = RTN_UNICAST;
      if (getBool(r, "onlink")) rt.rtm_flags |= RTNH_F_ONLINK;
    } else {
      rt.rtm_scope = RT_SCOPE_NOWHERE;
    }
    m.put(rt);
    if (table >= 256) m.u32(RTA_TABLE, table);
    if (dlen) m.attr(RTA_DST, &dst, 4);
    if (gw) m.attr(RTA_GATEWAY, &gw, 4);
    if (oif) m.u32(RTA_OIF, oif);
    if (srcA) m.attr(RTA_PREFSRC, &srcA, 4);
    if (present(r, "metric")) m.u32(RTA_PRIORITY, getU32(r, "metric"));
    std::string ext;
    int e = s.tryAck(m, &ext);
    if (add && e == EEXIST) throw NlError(e, "route " + what + " exists");
    if (!add && e == ESRCH) throw NlError(e, "no such route " + what);
    if (e == ENETUNREACH && gw)
      throw NlError(e, "route " + what + ": gateway " + gwS + " is unreachable" + (ext.empty() ? "" : " (" + ext + ")"));
    if (e) throw NlError(e, fail(e, ext, (add ? "add route " : "delete route ") + what));
    return info.Env().Undefined();
  });
}
Napi::Value RouteAdd(const Napi::CallbackInfo& info) { return RouteChange(info, 1); }
Napi::Value RouteReplace(const Napi::CallbackInfo& info) { return RouteChange(info, 2); }
Napi::Value RouteDel(const Napi::CallbackInfo& info) { return RouteChange(info, 0); }

Napi::Value RouteList(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    struct Rec {
      std::string dst, gw, src;
      int dlen, oif, table, protocol, scope, type;
      int64_t metric;
    };
    std::vector<Rec> out;
    {
      NsGuard g(ns);
      Sock s;
      rtmsg rt{};
      rt.rtm_family = AF_INET;
      dumpObjects(s, RTM_GETROUTE, RTM_NEWROUTE, rt, RTA_MAX, "list routes", [&](const rtmsg* p, const Attrs& a) {
        Rec r;
        r.table = a.has(RTA_TABLE) ? (int)a.u32(RTA_TABLE) : p->rtm_table;
        r.dst = a.len(RTA_DST) == 4 ? ip4ToStr(a.data(RTA_DST)) : "0.0.0.0";
        r.gw = a.len(RTA_GATEWAY) == 4 ? ip4ToStr(a.data(RTA_GATEWAY)) : "";
        r.src = a.len(RTA_PREFSRC) == 4 ? ip4ToStr(a.data(RTA_PREFSRC)) : "";
        r.dlen = p->rtm_dst_len;
        r.oif = (int)a.u32(RTA_OIF);
        r.protocol = p->rtm_protocol;
        r.scope = p->rtm_scope;
        r.type = p->rtm_type;
        r.metric = a.has(RTA_PRIORITY) ? (int64_t)a.u32(RTA_PRIORITY) : -1;
        out.push_back(r);
      });
    }
    Napi::Env env = info.Env();
    Napi::Array arr = Napi::Array::New(env, out.size());
    for (size_t i = 0; i < out.size(); i++) {
      const Rec& r = out[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("dst", r.dst);
      o.Set("dstLen", r.dlen);
      o.Set("gateway", r.gw.empty() ? env.Null() : Napi::String::New(env, r.gw));
      o.Set("oif", r.oif ? Napi::Number::New(env, r.oif) : env.Null());
      o.Set("src", r.src.empty() ? env.Null() : Napi::String::New(env, r.src));
      o.Set("table", r.table);
      o.Set("protocol", r.protocol);
      o.Set("scope", r.scope);
      o.Set("type", r.type);
      o.Set("metric", r.metric >= 0 ? Napi::Number::New(env, (double)r.metric) : env.Null());
      arr.Set(i, o);
    }
    return arr;
  });
}

// ------------------------------------------------------------------------------------ neighbours and FDB

// Resolves link names once per call (batches name the same device many times).
class IfCache {
 public:
  explicit IfCache(Sock& s) : s_(s) {}
  int get(const std::string& name) {
    auto it = m_.find(name);
    if (it != m_.end()) return it->second;
    int idx = ifindex(s_, name);
    m_[name] = idx;
    return idx;
  }

 private:
  Sock& s_;
  std::map<std::string, int> m_;
};

// One neighbour/FDB change (the unit of neighSet/neighDel/fdbSet/fdbDel and of batch()).
struct NeighOp {
  enum Kind { kNeighSet, kNeighDel, kFdbSet, kFdbDel } kind;
  std::string dev, ip, mac, dst;
  bool replace = true, append = false, self = true, master = false, permanent = true;
};

NeighOp parseNeighOp(const Napi::Object& o, NeighOp::Kind kind) {
  NeighOp op;
  op.kind = kind;
  op.dev = getStr(o, "dev");
  op.ip = getStr(o, "ip");
  op.mac = getStr(o, "mac");
  op.dst = getStr(o, "dst");
  op.replace = getBool(o, "replace", true);
  op.append = getBool(o, "append", false);
  op.self = getBool(o, "self", true);
  op.master = getBool(o, "master", false);
  op.permanent = getBool(o, "permanent", true);
  return op;
}

void runNeighOp(Sock& s, IfCache& ifc, const NeighOp& op) {
  int idx = ifc.get(op.dev);
  std::string ext;
  int e = 0;
  if (op.kind == NeighOp::kNeighSet || op.kind == NeighOp::kNeighDel) {
    bool add = op.kind == NeighOp::kNeighSet;
    uint32_t ip = parseIp4(op.ip, "address");
    uint8_t mac[6];
    if (add) parseMac(op.mac, mac);
    Msg m(add ? RTM_NEWNEIGH : RTM_DELNEIGH, add ? (NLM_F_CREATE | (op.replace ? NLM_F_REPLACE : NLM_F_EXCL)) : 0);
    ndmsg nd{};
    nd.ndm_family = AF_INET;
    nd.ndm_ifindex = idx;
    if (add) nd.ndm_state = NUD_PERMANENT;
    m.put(nd);
    m.attr(NDA_DST, &ip, 4);
    if (add) m.attr(NDA_LLADDR, mac, 6);
    e = s.tryAck(m, &ext);
    if (add && e == EEXIST) throw NlError(e, "neighbour " + op.ip + " exists on " + op.dev);
    if (!add && e == ENOENT) throw NlError(e, "no neighbour " + op.ip + " on " + op.dev);
    if (e) throw NlError(e, fail(e, ext, (add ? "set neighbour " : "delete neighbour ") + op.ip + " on " + op.dev));
    return;
  }
  bool add = op.kind == NeighOp::kFdbSet;
  uint8_t mac[6];
  parseMac(op.mac, mac);
  uint32_t dst = op.dst.empty() ? 0 : parseIp4(op.dst, "destination");
  uint16_t fl = 0;
  if (add) fl = NLM_F_CREATE | (op.append ? NLM_F_APPEND : op.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  Msg m(add ? RTM_NEWNEIGH : RTM_DELNEIGH, fl);
  ndmsg nd{};
  nd.ndm_family = AF_BRIDGE;
  nd.ndm_ifindex = idx;
  nd.ndm_state = op.permanent ? NUD_PERMANENT : NUD_NOARP;
  nd.ndm_flags = (op.self ? NTF_SELF : 0) | (op.master ? NTF_MASTER : 0);
  m.put(nd);
  m.attr(NDA_LLADDR, mac, 6);
  if (dst) m.attr(NDA_DST, &dst, 4);
  std::string what = op.mac + (op.dst.empty() ? "" : " dst " + op.dst) + " on " + op.dev;
  e = s.tryAck(m, &ext);
  if (add && e == EEXIST) throw NlError(e, "fdb entry " + what + " exists");
  if (!add && e == ENOENT) throw NlError(e, "no fdb entry " + what);
  if (e) throw NlError(e, fail(e, ext, (add ? "add fdb entry " : "delete fdb entry ") + what));
}

Napi::Value NeighOpCall(const Napi::CallbackInfo& info, NeighOp::Kind kind) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    NeighOp op = parseNeighOp(argObj(info, 1, "entry"), kind);
    NsGuard g(ns);
    Sock s;
    IfCache ifc(s);
    runNeighOp(s, ifc, op);
    return info.Env().Undefined();
  });
}

// neighSet(ns, { dev, ip, mac, replace? }): ARP entry, nud permanent.
Napi::Value NeighSet(const Napi::CallbackInfo& info) { return NeighOpCall(info, NeighOp::kNeighSet); }
// neighDel(ns, { dev, ip })
Napi::Value NeighDel(const Napi::CallbackInfo& info) { return NeighOpCall(info, NeighOp::kNeighDel); }
// fdbSet(ns, { dev, mac, dst?, self?=true, master?=false, replace?=true, append?=false, permanent?=true })
Napi::Value FdbSet(const Napi::CallbackInfo& info) { return NeighOpCall(info, NeighOp::kFdbSet); }
// fdbDel(ns, { dev, mac, dst?, self?, master? })
Napi::Value FdbDel(const Napi::CallbackInfo& info) { return NeighOpCall(info, NeighOp::kFdbDel); }

// neighBatch(ns, ops): ops = [{ op: 'neighSet'|'neighDel'|'fdbSet'|'fdbDel', ...entry }], all in one
// namespace switch and one socket. Returns one result per op: null, or { errno, code, message }.
Napi::Value NeighBatch(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    if (info.Length() < 2 || !info[1].IsArray()) throw NlError(EINVAL, "ops must be an array");
    Napi::Array a = info[1].As<Napi::Array>();
    std::vector<NeighOp> ops;
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsObject()) throw NlError(EINVAL, "ops must be objects");
      Napi::Object o = v.As<Napi::Object>();
      std::string k = getStr(o, "op");
      NeighOp::Kind kind;
      if (k == "neighSet") kind = NeighOp::kNeighSet;
      else if (k == "neighDel") kind = NeighOp::kNeighDel;
      else if (k == "fdbSet") kind = NeighOp::kFdbSet;
      else if (k == "fdbDel") kind = NeighOp::kFdbDel;
      else throw NlError(EINVAL, "unknown batch op \"" + k + "\"");
      ops.push_back(parseNeighOp(o, kind));
    }
    std::vector<std::pair<int, std::string>> res(ops.size(), {0, ""});
    {
      NsGuard g(ns);
      Sock s;
      IfCache ifc(s);
      for (size_t i = 0; i < ops.size(); i++) {
        try {
          runNeighOp(s, ifc, ops[i]);
        } catch (const NlError& e) {
          res[i] = {e.err, e.msg};
        }
      }
    }
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, res.size());
    for (size_t i = 0; i < res.size(); i++) {
      if (!res[i].first) {
        out.Set(i, env.Null());
        continue;
      }
      Napi::Object o = Napi::Object::New(env);
      o.Set("errno", res[i].first);
      const char* code = strerrorname_np(res[i].first);
      o.Set("code", code ? code : "EUNKNOWN");
      o.Set("message", res[i].second);
      out.Set(i, o);
    }
    return out;
  });
}

// neighList(ns, family): family 'inet' (ARP table) or 'bridge' (FDB).
Napi::Value NeighList(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::string fam = argStr(info, 1, "family");
    bool bridge = fam == "bridge";
    if (!bridge && fam != "inet") throw NlError(EINVAL, "family must be 'inet' or 'bridge'");
    struct Rec {
      int ifindex, state, flags, master;
      std::string ip, mac;
      int64_t vni;
    };
    std::vector<Rec> out;
    {
      NsGuard g(ns);
      Sock s;
      ndmsg nd{};
      nd.ndm_family = bridge ? AF_BRIDGE : AF_INET;
      dumpObjects(s, RTM_GETNEIGH, RTM_NEWNEIGH, nd, NDA_MAX, bridge ? "list fdb" : "list neighbours", [&](const ndmsg* p, const Attrs& a) {
        if (p->ndm_family != (bridge ? AF_BRIDGE : AF_INET)) return;
        Rec r;
        r.ifindex = p->ndm_ifindex;
        r.state = p->ndm_state;
        r.flags = p->ndm_flags;
        r.master = (int)a.u32(NDA_MASTER);
        r.ip = a.len(NDA_DST) == 4 ? ip4ToStr(a.data(NDA_DST)) : "";
        r.mac = a.has(NDA_LLADDR) ? macToStr(a.data(NDA_LLADDR), a.len(NDA_LLADDR)) : "";
        r.vni = a.has(NDA_VNI) ? (int64_t)a.u32(NDA_VNI) : -1;
        out.push_back(r);
      });
    }
    Napi::Env env = info.Env();
    Napi::Array arr = Napi::Array::New(env, out.size());
    for (size_t i = 0; i < out.size(); i++) {
      const Rec& r = out[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("ifindex", r.ifindex);
      o.Set(bridge ? "dst" : "ip", r.ip.empty() ? env.Null() : Napi::String::New(env, r.ip));
      o.Set("mac", r.mac.empty() ? env.Null() : Napi::String::New(env, r.mac));
      o.Set("state", r.state);
      o.Set("flags", r.flags);
      if (bridge) {
        o.Set("masterIndex", r.master ? Napi::Number::New(env, r.master) : env.Null());
        o.Set("vni", r.vni >= 0 ? Napi::Number::New(env, (double)r.vni) : env.Null());
      }
      arr.Set(i, o);
    }
    return arr;
  });
}

// ---------------------------------------------------------------------------------------- namespaces

// Makes dir a mount point with shared propagation (as `ip netns add` does), so the namespace bind mounts
// under it propagate to (and their removal reaches) mount namespaces created later.
void sharedMountDir(const std::string& dir) {
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return;
  if (errno != EINVAL) return;  // best effort, as with ip
  if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) == 0)
    mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr);
}

void mkdirs(const std::string& dir) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    cur = dir.substr(0, pos);
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), 0755) < 0 && errno != EEXIST) {
      int e = errno;
      throw NlError(e, "cannot create directory " + cur + ": " + errText(e));
    }
  }
}

// netnsAdd(path): a new network namespace kept alive by a bind mount on path.
Napi::Value NetnsAdd(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string path = argStr(info, 0, "path");
    size_t slash = path.rfind('/');
    if (path.empty() || path[0] != '/' || slash == std::string::npos || slash + 1 == path.size())
      throw NlError(EINVAL, "invalid namespace path \"" + path + "\"");
    std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    mkdirs(dir);
    sharedMountDir(dir);
    int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0) {
      int e = errno;
      if (e == EEXIST) throw NlError(e, "namespace " + path + " exists");
      throw NlError(e, "cannot create " + path + ": " + errText(e));
    }
    close(fd);
    int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0) {
      int e = errno;
      unlink(path.c_str());
      throw NlError(e, "cannot open this thread's network namespace: " + errText(e));
    }
    if (unshare(CLONE_NEWNET) < 0) {
      int e = errno;
      close(orig);
      unlink(path.c_str());
      throw NlError(e, "cannot create a network namespace: " + errText(e));
    }
    int mountErr = 0;
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) < 0) mountErr = errno;
    if (setns(orig, CLONE_NEWNET) < 0) {
      fprintf(stderr, "shoal_netlink: cannot return to the original network namespace: %s\n", strerror(errno));
      abort();
    }
    close(orig);
    if (mountErr) {
      unlink(path.c_str());
      throw NlError(mountErr, "cannot bind-mount the namespace on " + path + ": " + errText(mountErr));
    }
    return info.Env().Undefined();
  });
}

// netnsDel(path): unmounts and removes the namespace file (the namespace itself lives on while a process
// or open file holds it).
Napi::Value NetnsDel(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string path = argStr(info, 0, "path");
    if (umount2(path.c_str(), MNT_DETACH) < 0) {
      int e = errno;
      if (e == ENOENT) throw NlError(e, "no such namespace " + path);
      if (e != EINVAL) throw NlError(e, "cannot unmount namespace " + path + ": " + errText(e));
      // EINVAL: not a mount point (a leftover file): remove it anyway.
    }
    if (unlink(path.c_str()) < 0) {
      int e = errno;
      if (e == ENOENT) throw NlError(e, "no such namespace " + path);
      throw NlError(e, "cannot remove " + path + ": " + errText(e));
    }
    return info.Env().Undefined();
  });
}

// ------------------------------------------------------------------------------------------------ sysctl

std::string sysctlPath(const std::string& key) {
  if (key.empty() || key.find("..") != std::string::npos || key[0] == '/' || key[0] == '.')
    throw NlError(EINVAL, "invalid sysctl key \"" + key + "\"");
  std::string p = key;
  if (p.find('/') == std::string::npos)
    for (char& c : p)
      if (c == '.') c = '/';
  return "/proc/sys/" + p;
}

// mountOverlay(options, target): mount(2) of an overlay filesystem, without spawning mount(8) (a few ms
// per container start). options is the overlay option string (lowerdir=…,upperdir=…,workdir=…).
// nodev,nosuid: a device node or setuid file a container leaves in its upper dir is inert when reached
// through the host's path (containers run with no_new_privs and a device cgroup, so inside it changes
// nothing).
Napi::Value MountOverlay(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string opts = argStr(info, 0, "options");
    std::string target = argStr(info, 1, "target");
    if (mount("overlay", target.c_str(), "overlay", MS_NODEV | MS_NOSUID, opts.c_str()) != 0) {
      int e = errno;
      throw NlError(e, "mount overlay on " + target + ": " + errText(e));
    }
    return info.Env().Undefined();
  });
}

// umount(target, lazy): umount2(2), MNT_DETACH when lazy.
Napi::Value Umount(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string target = argStr(info, 0, "target");
    bool lazy = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    if (umount2(target.c_str(), lazy ? MNT_DETACH : 0) != 0) {
      int e = errno;
      throw NlError(e, "umount " + target + ": " + errText(e));
    }
    return info.Env().Undefined();
  });
}

// sysctlWrite(ns, key, value): key as 'net.ipv4.ip_forward' or 'net/ipv4/conf/eth0.5/proxy_arp'.
Napi::Value SysctlWrite(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::string key = argStr(info, 1, "key");
    std::string val = argStr(info, 2, "value") + "\n";
    std::string p = sysctlPath(key);
    NsGuard g(ns);
    int fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == ENOENT) throw NlError(e, "no such sysctl " + key);
      throw NlError(e, "cannot open sysctl " + key + ": " + errText(e));
    }
    ssize_t n = write(fd, val.data(), val.size());
    int e = errno;
    close(fd);
    if (n < 0) throw NlError(e, "cannot write sysctl " + key + ": " + errText(e));
    return info.Env().Undefined();
  });
}

Napi::Value SysctlRead(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string ns = argStr(info, 0, "netns");
    std::string key = argStr(info, 1, "key");
    std::string p = sysctlPath(key);
    NsGuard g(ns);
    std::string v;
    int e = readProcValue(p, &v);
    if (e == ENOENT) throw NlError(e, "no such sysctl " + key);
    if (e) throw NlError(e, "cannot read sysctl " + key + ": " + errText(e));
    return Napi::String::New(info.Env(), v);
  });
}

// Identity (dev:ino) of a namespace file, or of the calling thread's namespace for ''.
Napi::Value NetnsId(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string path = argStr(info, 0, "path");
    std::string p = path.empty() ? "/proc/thread-self/ns/net" : path;
    struct stat st;
    if (stat(p.c_str(), &st) < 0) {
      int e = errno;
      if (e == ENOENT) throw NlError(e, "no such namespace " + path);
      throw NlError(e, "cannot stat " + p + ": " + errText(e));
    }
    return Napi::String::New(info.Env(), std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
  });
}

// ------------------------------------------------------------------------------------- sealed binaries

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

// sealedCopy(path, name): a copy of the file at path in a memfd called name, sealed against any change
// (F_SEAL_SEAL|SHRINK|GROW|WRITE), returned as a read-only, close-on-exec descriptor. The engine holds one
// copy of shoal-shim per daemon and spawns it as /proc/self/fd/N, so every container's monitor runs from
// it (CVE-2019-5736: a container cannot write its monitor's binary) without copying 1 MB per start. The
// writable descriptor is closed: no process holds the copy open for writing, so exec never meets
// ETXTBSY. MFD_EXEC is retried without on kernels before 6.3 (EINVAL), as the shim itself does.
Napi::Value SealedCopy(const Napi::CallbackInfo& info) {
  return wrap(info, [&]() -> Napi::Value {
    std::string path = argStr(info, 0, "path");
    std::string name = argStr(info, 1, "name");
    Fd src(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (src.get() < 0) {
      int e = errno;
      throw NlError(e, "open " + path + ": " + errText(e));
    }
    struct stat st;
    if (fstat(src.get(), &st) < 0) {
      int e = errno;
      throw NlError(e, "stat " + path + ": " + errText(e));
    }
    if (!S_ISREG(st.st_mode)) throw NlError(EINVAL, path + ": not a regular file");
    int raw = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (raw < 0 && errno == EINVAL) raw = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (raw < 0) {
      int e = errno;
      throw NlError(e, "memfd_create: " + errText(e));
    }
    Fd mfd(raw);
    for (off_t off = 0; off < st.st_size;) {
      ssize_t n = sendfile(mfd.get(), src.get(), &off, static_cast<size_t>(st.st_size - off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int e = n < 0 ? errno : EIO;
        throw NlError(e, "copying " + path + " into a memfd: " + (n < 0 ? errText(e) : "short copy"));
      }
    }
    if (fcntl(mfd.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
      int e = errno;
      throw NlError(e, "sealing the memfd: " + errText(e));
    }
    std::string self = "/proc/self/fd/" + std::to_string(mfd.get());
    int ro = open(self.c_str(), O_RDONLY | O_CLOEXEC);
    if (ro < 0) {
      int e = errno;
      throw NlError(e, "reopening the memfd read-only: " + errText(e));
    }
    return Napi::Number::New(info.Env(), ro);
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("linkAdd", Napi::Function::New(env, LinkAdd));
  exports.Set("linkSet", Napi::Function::New(env, LinkSet));
  exports.Set("linkDel", Napi::Function::New(env, LinkDel));
  exports.Set("linkGet", Napi::Function::New(env, LinkGet));
  exports.Set("linkList", Napi::Function::New(env, LinkList));
  exports.Set("deleteLinksAsync", Napi::Function::New(env, DeleteLinksAsync));
  exports.Set("ctDropAsync", Napi::Function::New(env, CtDropAsync));
  exports.Set("addrAdd", Napi::Function::New(env, AddrAdd));
  exports.Set("addrDel", Napi::Function::New(env, AddrDel));
  exports.Set("addrList", Napi::Function::New(env, AddrList));
  exports.Set("routeAdd", Napi::Function::New(env, RouteAdd));
  exports.Set("routeReplace", Napi::Function::New(env, RouteReplace));
  exports.Set("routeDel", Napi::Function::New(env, RouteDel));
  exports.Set("routeList", Napi::Function::New(env, RouteList));
  exports.Set("neighSet", Napi::Function::New(env, NeighSet));
  exports.Set("neighDel", Napi::Function::New(env, NeighDel));
  exports.Set("neighList", Napi::Function::New(env, NeighList));
  exports.Set("fdbSet", Napi::Function::New(env, FdbSet));
  exports.Set("fdbDel", Napi::Function::New(env, FdbDel));
  exports.Set("neighBatch", Napi::Function::New(env, NeighBatch));
  exports.Set("netnsAdd", Napi::Function::New(env, NetnsAdd));
  exports.Set("netnsDel", Napi::Function::New(env, NetnsDel));
  exports.Set("netnsId", Napi::Function::New(env, NetnsId));
  exports.Set("sysctlWrite", Napi::Function::New(env, SysctlWrite));
  exports.Set("mountOverlay", Napi::Function::New(env, MountOverlay));
  exports.Set("umount", Napi::Function::New(env, Umount));
  exports.Set("sysctlRead", Napi::Function::New(env, SysctlRead));
  exports.Set("sealedCopy", Napi::Function::New(env, SealedCopy));
  return exports;
}

}  // namespace

NODE_API_MODULE(shoal_netlink, Init)
