/*
 * shoal-shim: per-container monitor for Shoal's own container engine.
 *
 *   shoal-shim --state-dir DIR --rootfs DIR [--hostname H] [--workdir W] [--user UID:GID]
 *              [--env K=V]... [--cgroup PATH]... [--log FILE] [--log-max-bytes N]
 *              [--stop-grace-ms N] [--stop-signal SIG] [--no-seccomp]
 *              [--netns PATH | --net host] [--mount TYPE,SRC,DST[,OPT]...]... -- cmd args...
 *
 *   shoal-shim exec --state-dir DIR [--env K=V]... [--workdir W] [--user UID:GID] [--no-seccomp]
 *              -- cmd args...
 *
 * The shim daemonizes (setsid + double fork), creates the container with clone() in fresh
 * mount/pid/uts/ipc/net/cgroup namespaces, stays the parent of the container's PID 1, pumps its
 * stdout/stderr into a JSON-lines log with rotation, handles stop requests and records the
 * container's life in DIR/state.json (written atomically). `exec` runs another command inside a
 * running container (its namespaces, cgroups and hardening) in the foreground. See
 * docs/design/engine.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <stddef.h>

#define MAX_LIST 256
#define LINE_MAX_BYTES 16384

/* ---- options ---- */
static const char *state_dir, *rootfs, *hostname_opt, *workdir = "/", *log_path;
static uid_t run_uid = 0;
static gid_t run_gid = 0;
static const char *envs[MAX_LIST];
static int n_envs;
static const char *cgroups[MAX_LIST];
static int n_cgroups;
static long long log_max_bytes = 10 * 1024 * 1024;
static long stop_grace_ms = 10000;
static int stop_signal = SIGTERM;
static char **cmd_argv;
static int seccomp_enabled = 1;
static const char *netns_path; /* --netns: join this network namespace instead of creating one */
static int netns_fd = -1;
static int net_host;           /* --net host: stay in the shim's (the host's) network namespace */

/* --mount TYPE,SRC,DST[,OPT]...: a bind (files or directories) or a tmpfs placed into the rootfs */
enum mount_type { MOUNT_BIND, MOUNT_TMPFS };
struct mount_spec {
    enum mount_type type;
    char *src, *dst;
    int ro;
    long long size; /* tmpfs size in bytes, 0 = the kernel's default (half of RAM) */
    unsigned mode;  /* tmpfs root mode */
};
static struct mount_spec mounts[MAX_LIST];
static int n_mounts;

/* ---- runtime ---- */
static int sync_pipe[2] = {-1, -1}; /* parent -> child: "cgroups joined, go" */
static int err_pipe[2] = {-1, -1};  /* child -> parent: setup error text (CLOEXEC: EOF == exec ok) */
static int out_pipe[2] = {-1, -1}, errout_pipe[2] = {-1, -1};
static char started_at[40];
static unsigned long long shim_start_time;

/* Docker's default capability set. */
static const int default_caps[] = {
    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_MKNOD, CAP_NET_RAW, CAP_SETGID,
    CAP_SETUID, CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,
    CAP_AUDIT_WRITE,
};

/* Exit status for errors found before anything ran: 2 for a container start (the wrapper rejects the
 * start with the message), 125 for exec (docker exec's "the exec itself failed"). */
static int die_status = 2;

__attribute__((noreturn)) static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "shoal-shim: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(die_status);
}

static void iso_now(char *buf, size_t n) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append s to out as a JSON string body (no quotes). Returns bytes written (out sized 6*len+1). */
static size_t json_escape(char *out, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
        else if (c == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
        else if (c == '\r') { out[o++] = '\\'; out[o++] = 'r'; }
        else if (c == '\t') { out[o++] = '\\'; out[o++] = 't'; }
        else if (c < 0x20 || c == 0x7f) o += (size_t)sprintf(out + o, "\\u%04x", c);
        else out[o++] = (char)c;
    }
    out[o] = 0;
    return o;
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        buf += w; len -= (size_t)w;
    }
    return 0;
}

static char *path_in(const char *dir, const char *name) {
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0) exit(2);
    return p;
}

/* Atomically replace DIR/state.json (tmp + fsync + rename). */
static void write_state(const char *json_body) {
    char *tmp = path_in(state_dir, "state.json.tmp"), *fin = path_in(state_dir, "state.json");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { fprintf(stderr, "shoal-shim: open %s: %s\n", tmp, strerror(errno)); goto out; }
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "{%s,\"shimPid\":%d,\"shimStartTime\":%llu}\n", json_body,
                     (int)getpid(), shim_start_time);
    write_all(fd, buf, (size_t)n);
    fsync(fd);
    close(fd);
    if (rename(tmp, fin) < 0) fprintf(stderr, "shoal-shim: rename state: %s\n", strerror(errno));
out:
    free(tmp); free(fin);
}

static void write_failed(const char *msg) {
    char esc[4096 * 6 + 1], body[30000], now[40];
    size_t len = strlen(msg);
    if (len > 4096) len = 4096;
    json_escape(esc, msg, len);
    iso_now(now, sizeof now);
    snprintf(body, sizeof body, "\"status\":\"failed\",\"error\":\"%s\",\"finishedAt\":\"%s\"", esc, now);
    write_state(body);
}

static unsigned long long proc_start_time(pid_t pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p += 2; /* field 3 */
    for (int field = 3; field < 22 && p; field++) { p = strchr(p, ' '); if (p) p++; }
    return p ? strtoull(p, NULL, 10) : 0;
}

static int parse_signal(const char *s) {
    static const struct { const char *n; int v; } names[] = {
        {"TERM", SIGTERM}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"HUP", SIGHUP},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}, {"STOP", SIGSTOP},
    };
    if (strncmp(s, "SIG", 3) == 0) s += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].n) == 0) return names[i].v;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v <= 0 || v >= 65) return -1;
    return (int)v;
}

/* ====================================================================================== */
/* container side (runs in the cloned child, new namespaces)                              */
/* ====================================================================================== */

/* Where setup errors of the process about to exec go: the error pipe to the monitor (container), or
 * stderr with a prefix and a newline (exec, where the caller reads them like any command's stderr). */
static int fail_fd = -1;
static int fail_to_stderr;

__attribute__((noreturn)) static void vchild_fail(int code, const char *fmt, va_list ap) {
    char buf[2048];
    int n = 0;
    if (fail_to_stderr) n = snprintf(buf, sizeof buf, "shoal-shim exec: ");
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    if (fail_to_stderr) buf[n++] = '\n';
    write_all(fail_fd, buf, (size_t)n);
    _exit(code);
}

/* Exit codes follow docker exec: 125 setup failed, 126 command cannot be invoked, 127 not found. */
__attribute__((noreturn)) static void child_fail_code(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vchild_fail(code, fmt, ap);
}

__attribute__((noreturn)) static void child_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vchild_fail(125, fmt, ap);
}

static void xmount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
    if (mount(src, dst, type, flags, data) < 0)
        child_fail("mount %s on %s (%s): %s", src ? src : "(none)", dst, type ? type : "bind", strerror(errno));
}

/* Hide a path: bind /dev/null over files, a read-only empty tmpfs over directories. */
static void mask_path(const char *p) {
    struct stat st;
    if (stat(p, &st) < 0) return;
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0") < 0)
            child_fail("mask %s: %s", p, strerror(errno));
    } else if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0) {
        child_fail("mask %s: %s", p, strerror(errno));
    }
}

static void readonly_path(const char *p) {
    struct stat st;
    if (stat(p, &st) < 0) return;
    xmount(p, p, NULL, MS_BIND | MS_REC, NULL);
    xmount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static void setup_loopback(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) child_fail("socket: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) child_fail("SIOCGIFFLAGS lo: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) child_fail("SIOCSIFFLAGS lo: %s", strerror(errno));
    close(s);
}

/* ---- mounts given with --mount, placed into the rootfs before pivot_root ----
 * Targets are resolved as if the rootfs were "/": symlinks in the image (say /data -> /etc) and ".."
 * never leave it, so a mount can never land on, or create anything in, the host's own files. The kernel
 * does that for existing paths (openat2 with RESOLVE_IN_ROOT); missing components are created by
 * create_in_root. The mount is then made on /proc/self/fd/N, i.e. on exactly what was resolved. */
static int open_in_root(int rootfd, const char *path, int flags) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, rootfd, path[0] ? path : "/", &how, sizeof how);
}

/* Walks `path` inside the root, creating what is missing: directories (mode 0755) and, with want_file,
 * an empty file as the last component — also where a symlink points to something that does not exist
 * yet (an image's /etc/resolv.conf -> ../run/resolv.conf). Every step works on a directory fd opened in
 * the root and mkdirat/openat never follow a symlink they create into, so a concurrent change cannot
 * redirect it outside. Returns an O_PATH fd on the result, or -1 with errno set. */
static int create_in_root(int rootfd, const char *path, int want_file) {
    char resolved[PATH_MAX] = ""; /* walked so far, symlink-free: "/a/b" ("" = the root) */
    char todo[PATH_MAX], tmp[PATH_MAX];
    int links = 0;
    if (snprintf(todo, sizeof todo, "%s", path) >= (int)sizeof todo) { errno = ENAMETOOLONG; return -1; }
    for (char *p = todo; *p;) {
        while (*p == '/') p++;
        if (!*p) break;
        size_t len = strcspn(p, "/");
        char comp[NAME_MAX + 1];
        if (len > NAME_MAX) { errno = ENAMETOOLONG; return -1; }
        memcpy(comp, p, len);
        comp[len] = 0;
        p += len;
        int last = p[strspn(p, "/")] == 0;
        if (strcmp(comp, ".") == 0) continue;
        if (strcmp(comp, "..") == 0) { /* at the root, ".." is the root */
            char *slash = strrchr(resolved, '/');
            if (slash) *slash = 0;
            continue;
        }
        int dfd = open_in_root(rootfd, resolved, O_PATH | O_DIRECTORY);
        if (dfd < 0) return -1;
        struct stat st;
        int r = fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW), e = errno;
        if (r < 0 && e == ENOENT) {
            if (last && want_file) {
                r = openat(dfd, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                e = errno;
                if (r >= 0) close(r);
            } else {
                r = mkdirat(dfd, comp, 0755);
                e = errno;
            }
            if (r < 0 && e == EEXIST) r = 0; /* created meanwhile: the final open checks what it is */
        } else if (r == 0 && S_ISLNK(st.st_mode)) {
            /* continue with the link's target, then the rest of the path */
            char target[PATH_MAX];
            ssize_t n = readlinkat(dfd, comp, target, sizeof target - 1);
            e = errno;
            close(dfd);
            if (n < 0) { errno = e; return -1; }
            if (++links > 40) { errno = ELOOP; return -1; }
            target[n] = 0;
            if (target[0] == '/') resolved[0] = 0;
            if (snprintf(tmp, sizeof tmp, "%s/%s", target, p) >= (int)sizeof tmp) { errno = ENAMETOOLONG; return -1; }
            memcpy(todo, tmp, sizeof todo);
            p = todo;
            continue;
        } else if (r == 0 && !last && !S_ISDIR(st.st_mode)) {
            r = -1;
            e = ENOTDIR;
        }
        close(dfd);
        if (r < 0) { errno = e; return -1; }
        if (strlen(resolved) + 1 + len >= sizeof resolved) { errno = ENAMETOOLONG; return -1; }
        strcat(resolved, "/");
        strcat(resolved, comp);
    }
    if (!resolved[0]) { errno = EINVAL; return -1; } /* resolves to the root itself */
    return open_in_root(rootfd, resolved, O_PATH | (want_file ? 0 : O_DIRECTORY));
}

static void make_readonly(int rootfd, const struct mount_spec *m) {
    /* reopen by path: the walk now ends on the new mount, the old fd still names the covered dentry */
    int fd = open_in_root(rootfd, m->dst, O_PATH);
    if (fd < 0) child_fail("mount %s: reopen: %s", m->dst, strerror(errno));
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
        if (errno != ENOSYS) child_fail("mount %s read-only: %s", m->dst, strerror(errno));
        /* before Linux 5.12 (no mount_setattr) only the top mount can be made read-only */
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
            child_fail("mount %s read-only: %s", m->dst, strerror(errno));
    }
    close(fd);
}

static void setup_mounts(void) {
    int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) child_fail("open rootfs %s: %s", rootfs, strerror(errno));
    for (int i = 0; i < n_mounts; i++) {
        const struct mount_spec *m = &mounts[i];
        struct stat st = {0};
        if (m->type == MOUNT_BIND && stat(m->src, &st) < 0) child_fail("bind source %s: %s", m->src, strerror(errno));
        int fd = create_in_root(rootfd, m->dst, m->type == MOUNT_BIND && !S_ISDIR(st.st_mode));
        if (fd < 0) child_fail("mount target %s: %s", m->dst, strerror(errno));
        char target[64];
        snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
        if (m->type == MOUNT_BIND) {
            if (mount(m->src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
                child_fail("bind %s on %s: %s", m->src, m->dst, strerror(errno));
            if (m->ro) make_readonly(rootfd, m);
        } else {
            /* Docker's tmpfs defaults: mode 1777, nosuid, nodev, noexec */
            char data[96];
            int k = snprintf(data, sizeof data, "mode=%o", m->mode);
            if (m->size > 0) snprintf(data + k, sizeof data - (size_t)k, ",size=%lld", m->size);
            unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC | (m->ro ? MS_RDONLY : 0);
            if (mount("tmpfs", target, "tmpfs", fl, data) < 0) child_fail("tmpfs on %s: %s", m->dst, strerror(errno));
        }
        close(fd);
    }
    close(rootfd);
}

static void setup_dev(void) {
    xmount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
    static const struct { const char *name; unsigned maj, min; } devs[] = {
        {"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
        {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
    };
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++)
        if (mknod(devs[i].name, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0)
            child_fail("mknod %s: %s", devs[i].name, strerror(errno));
    umask(old);
    mkdir("/dev/pts", 0755);
    xmount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
    if (symlink("pts/ptmx", "/dev/ptmx") < 0) child_fail("symlink ptmx: %s", strerror(errno));
    mkdir("/dev/shm", 01777);
    xmount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
    mkdir("/dev/mqueue", 0755);
    mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL); /* best effort */
    symlink("/proc/self/fd", "/dev/fd");
    symlink("/proc/self/fd/0", "/dev/stdin");
    symlink("/proc/self/fd/1", "/dev/stdout");
    symlink("/proc/self/fd/2", "/dev/stderr");
}

static int cap_in_default(int c) {
    for (size_t i = 0; i < sizeof default_caps / sizeof default_caps[0]; i++)
        if (default_caps[i] == c) return 1;
    return 0;
}

static int read_last_cap(void) {
    int last = CAP_LAST_CAP;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) { if (fscanf(f, "%d", &last) != 1) last = CAP_LAST_CAP; fclose(f); }
    return last;
}

static void set_caps(int last_cap) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (run_uid == 0) {
        for (int c = 0; c <= last_cap && c < 64; c++) {
            if (!cap_in_default(c)) continue;
            data[c / 32].effective |= 1u << (c % 32);
            data[c / 32].permitted |= 1u << (c % 32);
        }
    }
    /* non-root users get empty effective/permitted sets, as with Docker */
    if (syscall(SYS_capset, &hdr, data) < 0) child_fail("capset: %s", strerror(errno));
}

/* ---- default seccomp filter (classic BPF, no libseccomp) ----
 * Deny list modelled on the intent of Docker's default profile: syscalls that reach the host kernel's
 * global state (modules, kexec, reboot, clock, swap, accounting, keyring, bpf/perf, raw I/O ports) or
 * that let a container rearrange its namespaces and mounts. They fail with EPERM; everything else is
 * allowed. clone is filtered on its flags argument: asking for a new namespace fails with EPERM (a user
 * namespace needs no capability, so without this a container could create one and gain a full
 * capability set inside it). clone3 passes its flags in memory, which classic BPF cannot inspect, so it
 * fails with ENOSYS and libc falls back to clone, as with Docker's profile. A foreign architecture kills
 * the process; on x86_64 the x32 ABI is refused. */
#if defined(__x86_64__)
#define SHIM_AUDIT_ARCH AUDIT_ARCH_X86_64
#define SHIM_DENY_X32 1
#elif defined(__aarch64__)
#define SHIM_AUDIT_ARCH AUDIT_ARCH_AARCH64
#define SHIM_DENY_X32 0
#endif
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

static const long seccomp_deny[] = {
#ifdef __NR_kexec_load
    __NR_kexec_load,
#endif
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
    __NR_reboot, __NR_init_module, __NR_finit_module, __NR_delete_module, __NR_swapon, __NR_swapoff,
    __NR_mount, __NR_umount2, __NR_pivot_root, __NR_acct, __NR_settimeofday, __NR_clock_settime,
    __NR_clock_adjtime, __NR_adjtimex,
#ifdef __NR_stime
    __NR_stime,
#endif
#ifdef __NR_iopl
    __NR_iopl,
#endif
#ifdef __NR_ioperm
    __NR_ioperm,
#endif
    __NR_keyctl, __NR_add_key, __NR_request_key, __NR_bpf, __NR_perf_event_open, __NR_userfaultfd,
#ifdef __NR_lookup_dcookie /* dropped from newer kernel headers */
    __NR_lookup_dcookie,
#endif
    __NR_open_by_handle_at, __NR_name_to_handle_at, __NR_quotactl,
#ifdef __NR_nfsservctl
    __NR_nfsservctl,
#endif
    __NR_setns, __NR_unshare, __NR_fanotify_init, __NR_kcmp,
#ifdef __NR_vm86
    __NR_vm86,
#endif
#ifdef __NR_vm86old
    __NR_vm86old,
#endif
#ifdef __NR_create_module
    __NR_create_module,
#endif
#ifdef __NR_get_kernel_syms
    __NR_get_kernel_syms,
#endif
#ifdef __NR_query_module
    __NR_query_module,
#endif
#ifdef __NR_uselib
    __NR_uselib,
#endif
};

/* Namespace flags of clone(2) (CLONE_NEWTIME is not among them: in clone's flags that bit is part of the
 * exit signal; only unshare and clone3, both refused, can ask for a time namespace). */
#define CLONE_NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                        CLONE_NEWPID | CLONE_NEWNET)

static void install_seccomp(void) {
#ifndef SHIM_AUDIT_ARCH
    child_fail("seccomp: the default filter supports only x86_64 and aarch64; run with --no-seccomp on this architecture");
#else
    enum { N = sizeof seccomp_deny / sizeof seccomp_deny[0] };
    /* Program layout (jumps are forward only, so every verdict comes last):
     *   load arch; wrong arch -> KILL; load nr; [x32 -> DENY]; clone3 -> ENOSYS;
     *   clone -> load flags (low 32 bits of args[0]; legacy clone ignores the upper half), any CLONE_NEW* -> DENY, else ALLOW;
     *   N x (nr == denied -> DENY); ALLOW; DENY; ENOSYS */
    enum { CHECKS = 4 + SHIM_DENY_X32 + 4 + N, L_ALLOW = CHECKS, L_DENY = CHECKS + 1, L_ENOSYS = CHECKS + 2, LEN = CHECKS + 3 };
    _Static_assert(LEN < 255, "filter too long for 8-bit BPF jump offsets");
    struct sock_filter f[LEN];
    unsigned short n = 0;
#define JUMP_TO(label) ((unsigned char)((label) - n - 1)) /* offset from the instruction being emitted */
    f[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)); n++;
    f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SHIM_AUDIT_ARCH, 1, 0); n++;
    f[n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS); n++;
    f[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)); n++;
    if (SHIM_DENY_X32) { /* x32 syscalls carry __X32_SYSCALL_BIT */
        f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, __X32_SYSCALL_BIT, JUMP_TO(L_DENY), 0); n++;
    }
    f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, JUMP_TO(L_ENOSYS), 0); n++;
    f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 2); n++;
    f[n] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])); n++;
    f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NS_FLAGS, JUMP_TO(L_DENY), JUMP_TO(L_ALLOW)); n++;
    for (unsigned i = 0; i < N; i++) {
        f[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)seccomp_deny[i], JUMP_TO(L_DENY), 0); n++;
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
#undef JUMP_TO
    struct sock_fprog prog = {.len = n, .filter = f};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) child_fail("seccomp: %s", strerror(errno));
#endif
}

static void exec_cmd(char **envp, const char *path_env) {
    const char *file = cmd_argv[0];
    if (strchr(file, '/')) {
        execve(file, cmd_argv, envp);
        int e = errno;
        child_fail_code(e == ENOENT ? 127 : 126, "exec %s: %s", file, strerror(e));
    }
    int saved = ENOENT;
    const char *p = path_env;
    char buf[PATH_MAX];
    while (p && *p) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0) snprintf(buf, sizeof buf, "./%s", file);
        else snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, file);
        execve(buf, cmd_argv, envp);
        if (errno == EACCES) saved = EACCES;
        else if (errno != ENOENT && errno != ENOTDIR && saved != EACCES) saved = errno;
        p = e ? e + 1 : NULL;
    }
    child_fail_code(saved == ENOENT ? 127 : 126, "exec %s: %s (searched PATH=%s)", file, strerror(saved), path_env);
}

/* The hardening every process started in the container gets (PID 1 and exec'd commands alike): open-files
 * limit, capability bounding and ambient sets, user and groups, Docker's default capabilities,
 * no_new_privs, and death with the parent. Seccomp comes separately, as the very last step before exec. */
static void harden(int last_cap) {
    struct rlimit rl = {1048576, 1048576};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        /* without CAP_SYS_RESOURCE we cannot raise the hard limit: use everything we are allowed */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0) child_fail("setrlimit nofile: %s", strerror(errno));
        }
    }

    /* capabilities: shrink the bounding set while we still hold CAP_SETPCAP */
    for (int c = 0; c <= last_cap; c++)
        if (!cap_in_default(c) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail("PR_CAPBSET_DROP %d: %s", c, strerror(errno));
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);

    if (setgroups(0, NULL) < 0) child_fail("setgroups: %s", strerror(errno));
    if (setresgid(run_gid, run_gid, run_gid) < 0) child_fail("setgid %d: %s", (int)run_gid, strerror(errno));
    if (setresuid(run_uid, run_uid, run_uid) < 0) child_fail("setuid %d: %s", (int)run_uid, strerror(errno));
    set_caps(last_cap);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail("no_new_privs: %s", strerror(errno));
    /* if our parent dies (the shim crashes or is killed), we die with it: never run unsupervised. Set after
     * setresuid, which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}

/* envp for the command: `base` (may be NULL), then --env entries replacing same-named ones, and the
 * default PATH when none is set. *path_env points at the PATH value used for the command search. */
static char **build_env(char **base, int n_base, const char **path_env) {
    char **envp = calloc((size_t)(n_base + n_envs + 2), sizeof *envp);
    if (!envp) child_fail("out of memory");
    int ne = 0;
    for (int i = 0; i < n_base; i++) {
        size_t klen = strcspn(base[i], "=");
        int overridden = 0;
        for (int j = 0; j < n_envs && !overridden; j++)
            overridden = strncmp(envs[j], base[i], klen + 1) == 0;
        if (!overridden) envp[ne++] = base[i];
    }
    for (int i = 0; i < n_envs; i++) envp[ne++] = (char *)envs[i];
    *path_env = NULL;
    for (int i = 0; i < ne; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0) *path_env = envp[i] + 5;
    if (!*path_env) {
        static char def[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        envp[ne++] = def;
        *path_env = def + 5;
    }
    envp[ne] = NULL;
    return envp;
}

static int child_main(void *arg) {
    (void)arg;
    close(sync_pipe[1]);
    close(err_pipe[0]);
    close(out_pipe[0]);
    close(errout_pipe[0]);
    fail_fd = err_pipe[1];
    char go;
    ssize_t r;
    do r = read(sync_pipe[0], &go, 1); while (r < 0 && errno == EINTR);
    if (r != 1) _exit(126); /* parent gave up */
    close(sync_pipe[0]);

    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    signal(SIGPIPE, SIG_DFL);

    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0) child_fail("open /dev/null: %s", strerror(errno));
    if (dup2(devnull, 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(errout_pipe[1], 2) < 0)
        child_fail("dup2: %s", strerror(errno));
    close(devnull); close(out_pipe[1]); close(errout_pipe[1]);

    int last_cap = read_last_cap();
    /* network first: sysfs, mounted below, shows the network namespace of whoever mounts it */
    if (netns_fd >= 0) {
        if (setns(netns_fd, CLONE_NEWNET) < 0) child_fail("join network namespace %s: %s", netns_path, strerror(errno));
        close(netns_fd);
    }
    if (!net_host) setup_loopback(); /* a prepared namespace may have it down still; bringing it up is idempotent */

    /* filesystem: private propagation, bind rootfs, the --mount list, pivot_root into it */
    xmount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    xmount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL);
    setup_mounts();
    if (chdir(rootfs) < 0) child_fail("chdir %s: %s", rootfs, strerror(errno));
    if (syscall(SYS_pivot_root, ".", ".") < 0) child_fail("pivot_root: %s", strerror(errno));
    if (umount2(".", MNT_DETACH) < 0) child_fail("umount old root: %s", strerror(errno));
    if (chdir("/") < 0) child_fail("chdir /: %s", strerror(errno));

    mkdir("/proc", 0555);
    xmount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mkdir("/dev", 0755);
    setup_dev();
    mkdir("/sys", 0555);
    xmount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

    static const char *masked[] = {
        "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats",
        "/proc/acpi", "/proc/scsi", "/sys/firmware",
    };
    for (size_t i = 0; i < sizeof masked / sizeof masked[0]; i++) mask_path(masked[i]);
    static const char *ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"};
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) readonly_path(ro[i]);

    if (hostname_opt && sethostname(hostname_opt, strlen(hostname_opt)) < 0)
        child_fail("sethostname: %s", strerror(errno));
    if (chdir(workdir) < 0) child_fail("chdir workdir %s: %s", workdir, strerror(errno));

    harden(last_cap);
    const char *path_env;
    char **envp = build_env(NULL, 0, &path_env);
    /* last step before exec (needs no_new_privs, set above): from here on the default filter applies */
    if (seccomp_enabled) install_seccomp();
    exec_cmd(envp, path_env);
    return 127;
}

/* ====================================================================================== */
/* shim side                                                                              */
/* ====================================================================================== */

struct stream {
    int fd;
    const char *name;
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static int log_fd = -1;
static long long log_size = 0;

static void log_open(void) {
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0) { fprintf(stderr, "shoal-shim: open log %s: %s\n", log_path, strerror(errno)); return; }
    struct stat st;
    log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

/* partial: the line goes on in the next record (it was longer than LINE_MAX_BYTES), like Docker's
 * partial-log metadata; readers join such records back into one line. */
static void log_line(const char *stream, const char *s, size_t len, int partial) {
    static char esc[LINE_MAX_BYTES * 6 + 1];
    static char out[LINE_MAX_BYTES * 6 + 128];
    char now[40];
    iso_now(now, sizeof now);
    json_escape(esc, s, len);
    int n = snprintf(out, sizeof out, "{\"t\":\"%s\",\"s\":\"%s\",\"l\":\"%s\"%s}\n", now, stream, esc, partial ? ",\"p\":true" : "");
    if (log_fd < 0) return;
    if (log_max_bytes > 0 && log_size > 0 && log_size + n > log_max_bytes) {
        char *rot;
        if (asprintf(&rot, "%s.1", log_path) >= 0) {
            close(log_fd);
            rename(log_path, rot);
            free(rot);
            log_open();
            if (log_fd < 0) return;
        }
    }
    if (write_all(log_fd, out, (size_t)n) == 0) log_size += n;
}

/* Read what is available; emit complete lines. Returns 0 on EOF/error (stream closed). */
static int pump(struct stream *st) {
    char tmp[65536];
    ssize_t n = read(st->fd, tmp, sizeof tmp);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (n <= 0) {
        if (st->len) { log_line(st->name, st->buf, st->len, 0); st->len = 0; }
        close(st->fd);
        st->fd = -1;
        return 0;
    }
    for (ssize_t i = 0; i < n; i++) {
        char c = tmp[i];
        if (c == '\n') { log_line(st->name, st->buf, st->len, 0); st->len = 0; continue; }
        st->buf[st->len++] = c;
        if (st->len == sizeof st->buf) {
            /* Cut at a UTF-8 character boundary (keep up to 3 bytes of a started character). */
            size_t cut = st->len, k = 0;
            while (k < 3 && cut > 0 && ((unsigned char)st->buf[cut - 1] & 0xC0) == 0x80) { cut--; k++; }
            if (cut > 0 && ((unsigned char)st->buf[cut - 1] & 0xC0) == 0xC0) cut--; else cut = st->len;
            log_line(st->name, st->buf, cut, 1);
            memmove(st->buf, st->buf + cut, st->len - cut);
            st->len -= cut;
        }
    }
    return 1;
}

/* OOM accounting: read the oom_kill counter of each memory cgroup we joined. */
static long long read_key(const char *file, const char *key) {
    FILE *f = fopen(file, "re");
    if (!f) return -1;
    char k[128];
    long long v, res = -1;
    while (fscanf(f, "%127s %lld", k, &v) == 2)
        if (strcmp(k, key) == 0) { res = v; break; }
    fclose(f);
    return res;
}

static long long read_number(const char *file) {
    FILE *f = fopen(file, "re");
    if (!f) return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

static long long oom_kills(int *have_counter) {
    long long total = 0;
    *have_counter = 0;
    for (int i = 0; i < n_cgroups; i++) {
        char *f = path_in(cgroups[i], "memory.oom_control"); /* v1 (kernel >= 4.13 has oom_kill) */
        long long v = read_key(f, "oom_kill");
        free(f);
        if (v < 0) { f = path_in(cgroups[i], "memory.events"); v = read_key(f, "oom_kill"); free(f); } /* v2 */
        if (v >= 0) { total += v; *have_counter = 1; }
    }
    return total;
}

static int memory_limit_hit(void) {
    for (int i = 0; i < n_cgroups; i++) {
        char *f = path_in(cgroups[i], "memory.failcnt");
        long long v = read_number(f);
        free(f);
        if (v > 0) return 1;
        f = path_in(cgroups[i], "memory.oom_control");
        v = read_key(f, "under_oom");
        free(f);
        if (v > 0) return 1;
    }
    return 0;
}

static long read_stop_grace_override(void) {
    char *f = path_in(state_dir, "stop-grace-ms");
    long long v = read_number(f);
    free(f);
    return v >= 0 ? (long)v : -1;
}

static void usage(void) {
    die("usage: shoal-shim --state-dir DIR --rootfs DIR [--hostname H] [--workdir W] [--user UID:GID] "
        "[--env K=V]... [--cgroup PATH]... [--log FILE] [--log-max-bytes N] [--stop-grace-ms N] "
        "[--stop-signal SIG] [--no-seccomp] [--netns PATH | --net host] [--mount TYPE,SRC,DST[,OPT]...]... "
        "-- cmd args...\n"
        "       shoal-shim exec --state-dir DIR [--env K=V]... [--workdir W] [--user UID:GID] [--no-seccomp] "
        "-- cmd args...");
}

/* "exec" mode (see exec_main); options it does not take are usage errors there */
static int exec_mode, user_given, workdir_given;

/* In place: collapse "//" and "/./", drop a trailing "/". Returns -1 for a relative path, a ".."
 * component or "/" itself (a mount may not replace the container's root). */
static int normalize_target(char *p) {
    if (p[0] != '/') return -1;
    char *out = p;
    for (char *in = p; *in;) {
        while (*in == '/') in++;
        if (!*in) break;
        size_t len = strcspn(in, "/");
        if (len == 2 && in[0] == '.' && in[1] == '.') return -1;
        if (!(len == 1 && in[0] == '.')) {
            *out++ = '/';
            memmove(out, in, len);
            out += len;
        }
        in += len;
    }
    *out = 0;
    return out == p ? -1 : 0;
}

/* --mount TYPE,SRC,DST[,OPT]...  TYPE bind (SRC: absolute host path, file or directory) or tmpfs (SRC
 * empty); OPT ro | rw, and for tmpfs size=BYTES, mode=OCTAL. Paths cannot contain commas. */
static void parse_mount(const char *v) {
    if (n_mounts >= MAX_LIST) die("too many --mount");
    struct mount_spec *m = &mounts[n_mounts];
    char *copy = strdup(v), *save = NULL;
    if (!copy) die("out of memory");
    char *type = strtok_r(copy, ",", &save);
    /* strtok_r skips empty fields, so SRC (empty for tmpfs) is split off by hand */
    char *src = save, *comma = src ? strchr(src, ',') : NULL;
    if (!type || !comma) die("--mount needs TYPE,SRC,DST[,OPT]...: %s", v);
    *comma = 0;
    save = comma + 1;
    char *dst = strtok_r(NULL, ",", &save);
    if (strcmp(type, "bind") == 0) m->type = MOUNT_BIND;
    else if (strcmp(type, "tmpfs") == 0) m->type = MOUNT_TMPFS;
    else die("--mount type must be bind or tmpfs: %s", v);
    if (m->type == MOUNT_BIND && src[0] != '/') die("--mount bind source must be an absolute path: %s", v);
    if (m->type == MOUNT_TMPFS && src[0]) die("--mount tmpfs takes no source: %s", v);
    if (!dst || normalize_target(dst) < 0) die("--mount target must be an absolute path other than / without '..': %s", v);
    m->src = src;
    m->dst = dst;
    m->mode = 01777;
    for (char *o; (o = strtok_r(NULL, ",", &save));) {
        char *end;
        if (strcmp(o, "ro") == 0) m->ro = 1;
        else if (strcmp(o, "rw") == 0) m->ro = 0;
        else if (m->type == MOUNT_TMPFS && strncmp(o, "size=", 5) == 0) {
            m->size = strtoll(o + 5, &end, 10);
            if (end == o + 5 || *end || m->size <= 0) die("bad tmpfs size in --mount %s", v);
        } else if (m->type == MOUNT_TMPFS && strncmp(o, "mode=", 5) == 0) {
            m->mode = (unsigned)strtoul(o + 5, &end, 8);
            if (end == o + 5 || *end || m->mode > 07777) die("bad tmpfs mode in --mount %s", v);
        } else die("unknown option %s in --mount %s", o, v);
    }
    n_mounts++;
}

static void parse_args(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) { i++; break; }
        if (strcmp(a, "--no-seccomp") == 0) { seccomp_enabled = 0; continue; }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (strcmp(a, "--state-dir") == 0) state_dir = v;
        else if (strcmp(a, "--workdir") == 0) { workdir = v; workdir_given = 1; }
        else if (strcmp(a, "--env") == 0) { if (n_envs >= MAX_LIST) die("too many --env"); if (!strchr(v, '=')) die("--env needs K=V: %s", v); envs[n_envs++] = v; }
        else if (strcmp(a, "--user") == 0) {
            char *end;
            unsigned long u = strtoul(v, &end, 10), g = u;
            if (end == v || (*end && *end != ':')) die("--user must be UID[:GID] (numeric): %s", v);
            if (*end == ':') { const char *gs = end + 1; g = strtoul(gs, &end, 10); if (end == gs || *end) die("bad gid in --user %s", v); }
            run_uid = (uid_t)u; run_gid = (gid_t)g;
            user_given = 1;
        }
        else if (exec_mode) usage();
        else if (strcmp(a, "--rootfs") == 0) rootfs = v;
        else if (strcmp(a, "--hostname") == 0) hostname_opt = v;
        else if (strcmp(a, "--log") == 0) log_path = v;
        else if (strcmp(a, "--log-max-bytes") == 0) log_max_bytes = atoll(v);
        else if (strcmp(a, "--stop-grace-ms") == 0) stop_grace_ms = atol(v);
        else if (strcmp(a, "--stop-signal") == 0) { stop_signal = parse_signal(v); if (stop_signal < 0) die("bad --stop-signal %s", v); }
        else if (strcmp(a, "--cgroup") == 0) { if (n_cgroups >= MAX_LIST) die("too many --cgroup"); cgroups[n_cgroups++] = v; }
        else if (strcmp(a, "--netns") == 0) netns_path = v;
        else if (strcmp(a, "--net") == 0) { if (strcmp(v, "host") != 0) die("--net only takes host (use --netns PATH for a prepared namespace)"); net_host = 1; }
        else if (strcmp(a, "--mount") == 0) parse_mount(v);
        else usage();
    }
    if (!state_dir || (!exec_mode && !rootfs) || i >= argc) usage();
    if (netns_path && net_host) die("--netns and --net host exclude each other");
    cmd_argv = &argv[i];
}

/* ====================================================================================== */
/* exec: run another command inside a running container, in the foreground                */
/* ====================================================================================== */

/* Whole small file (state.json, /proc/PID/environ) into a NUL-terminated buffer; NULL on error. */
static char *slurp(const char *path, size_t *len_out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (ssize_t n; buf; len += (size_t)n) {
        if (len + 1 >= cap) { char *b = realloc(buf, cap *= 2); if (!b) { free(buf); buf = NULL; break; } buf = b; }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) { n = 0; continue; }
        if (n <= 0) break;
    }
    close(fd);
    if (!buf) return NULL;
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

/* "key":<number> in the flat JSON the shim writes; -1 when absent. */
static long long json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p || p[strlen(pat)] < '0' || p[strlen(pat)] > '9') return -1;
    return strtoll(p + strlen(pat), NULL, 10);
}

/* First number after "Key:" in /proc/PID/status text; -1 when absent. */
static long long status_field(const char *status, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s:", key);
    const char *p = strstr(status, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* Mountinfo escapes spaces and the like as \ooo. */
static void unescape_octal(char *s) {
    char *o = s;
    for (char *i = s; *i; o++) {
        if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' && i[2] <= '7' && i[3] >= '0' && i[3] <= '7') {
            *o = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
            i += 4;
        } else *o = *i++;
    }
    *o = 0;
}

static int has_item(const char *list, const char *item, size_t len) {
    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (l == len && strncmp(p, item, len) == 0) return 1;
        p += l;
        if (*p == ',') p++;
    }
    return 0;
}

/* True when every comma-separated item of `need` ("cpu,cpuacct") is one of `have` (mount options). */
static int has_all_items(const char *have, const char *need) {
    for (const char *p = need; *p;) {
        size_t l = strcspn(p, ",");
        if (!has_item(have, p, l)) return 0;
        p += l;
        if (*p == ',') p++;
    }
    return 1;
}

/* Moves this process into every cgroup the container's PID 1 is in (one per v1 hierarchy, plus the
 * unified one), found through /proc/PID/cgroup and this mount namespace's cgroup mounts. Hierarchies
 * that are not mounted here are left alone. */
static void join_cgroups_of(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    char *cg = slurp(path, NULL), *mi = slurp("/proc/self/mountinfo", NULL);
    if (!cg || !mi) child_fail("read %s: %s", cg ? "/proc/self/mountinfo" : path, strerror(errno));
    char *cg_save = NULL;
    for (char *line = strtok_r(cg, "\n", &cg_save); line; line = strtok_r(NULL, "\n", &cg_save)) {
        /* "ID:CONTROLLERS:PATH"; v2 is "0::PATH" */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        const char *ctrls = c1 + 1, *cpath = c2 + 1;
        char *mi_copy = strdup(mi), *mi_save = NULL, *mount_point = NULL, *mount_root = NULL;
        if (!mi_copy) child_fail("out of memory");
        for (char *ml = strtok_r(mi_copy, "\n", &mi_save); ml && !mount_point; ml = strtok_r(NULL, "\n", &mi_save)) {
            /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
            char *f[64], *fs = NULL;
            int nf = 0;
            for (char *t = strtok_r(ml, " ", &fs); t && nf < 64; t = strtok_r(NULL, " ", &fs)) f[nf++] = t;
            int dash = 6;
            while (dash < nf && strcmp(f[dash], "-") != 0) dash++;
            if (dash + 3 >= nf) continue;
            const char *fstype = f[dash + 1], *super = f[dash + 3];
            int match = *ctrls ? strcmp(fstype, "cgroup") == 0 && has_all_items(super, ctrls)
                               : strcmp(fstype, "cgroup2") == 0;
            if (match) { mount_root = f[3]; mount_point = f[4]; }
        }
        if (mount_point) {
            unescape_octal(mount_root);
            unescape_octal(mount_point);
            size_t rl = strcmp(mount_root, "/") == 0 ? 0 : strlen(mount_root);
            if (rl == 0 || strncmp(cpath, mount_root, rl) == 0) {
                char *procs;
                if (asprintf(&procs, "%s%s/cgroup.procs", mount_point, cpath + rl) < 0) child_fail("out of memory");
                int fd = open(procs, O_WRONLY | O_CLOEXEC);
                char b[32];
                int n = snprintf(b, sizeof b, "%d", (int)getpid());
                if (fd < 0 || write_all(fd, b, (size_t)n) < 0) child_fail("join cgroup %s: %s", procs, strerror(errno));
                close(fd);
                free(procs);
            }
        }
        free(mi_copy);
    }
    free(cg);
    free(mi);
}

static int exec_main(int argc, char **argv) {
    exec_mode = 1;
    die_status = 125;
    fail_fd = 2;
    fail_to_stderr = 1;
    parse_args(argc, argv);

    /* the container: state.json says running, its monitor is the same process, and PID 1 is its child */
    char *sp = path_in(state_dir, "state.json");
    char *state = slurp(sp, NULL);
    if (!state) child_fail("container is not running (%s: %s)", sp, strerror(errno));
    pid_t pid = (pid_t)json_number(state, "pid");
    long long shim_pid = json_number(state, "shimPid"), shim_start = json_number(state, "shimStartTime");
    if (!strstr(state, "\"status\":\"running\"") || pid <= 0) child_fail("container is not running");
    if (shim_pid <= 0 || proc_start_time((pid_t)shim_pid) != (unsigned long long)shim_start)
        child_fail("container is not running (its monitor is gone)");
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *status = slurp(path, NULL);
    if (!status || status_field(status, "PPid") != shim_pid) child_fail("container is not running (PID 1 is gone)");

    /* everything about PID 1 is read before the namespace switch changes what /proc/PID means */
    if (!user_given) {
        run_uid = (uid_t)status_field(status, "Uid");
        run_gid = (gid_t)status_field(status, "Gid");
    }
    /* exec'd commands get the container's filter, unless the container runs without one */
    if (status_field(status, "Seccomp") == 0) seccomp_enabled = 0;
    int last_cap = read_last_cap();
    size_t env_len = 0;
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    char *environ_buf = slurp(path, &env_len);
    if (!environ_buf) child_fail("read %s: %s", path, strerror(errno));
    char **base_env = calloc(env_len / 2 + 2, sizeof *base_env);
    int n_base = 0;
    if (!base_env) child_fail("out of memory");
    for (size_t off = 0; off < env_len; off += strlen(environ_buf + off) + 1)
        if (environ_buf[off]) base_env[n_base++] = environ_buf + off;
    int cwd_fd = -1;
    if (!workdir_given) {
        /* default working directory: PID 1's current one (its --workdir unless it moved) */
        snprintf(path, sizeof path, "/proc/%d/cwd", (int)pid);
        cwd_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cwd_fd < 0) child_fail("open %s: %s", path, strerror(errno));
    }
    static const struct { const char *name; int type; } nss[] = {
        {"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
        {"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS},
    };
    enum { NNS = sizeof nss / sizeof nss[0] };
    int ns_fd[NNS];
    for (int i = 0; i < NNS; i++) {
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, nss[i].name);
        ns_fd[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (ns_fd[i] < 0) child_fail("open %s: %s", path, strerror(errno));
    }
    join_cgroups_of(pid);

    /* user namespace first (only when the container has its own: setns into our own fails), so the
     * joins after it are checked against it; the mount namespace last, as it changes /proc */
    for (int i = 0; i < NNS; i++) {
        if (nss[i].type == CLONE_NEWUSER) {
            struct stat mine, theirs;
            if (stat("/proc/self/ns/user", &mine) == 0 && fstat(ns_fd[i], &theirs) == 0 &&
                mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev) {
                close(ns_fd[i]);
                continue;
            }
        }
        if (setns(ns_fd[i], nss[i].type) < 0) child_fail("join %s namespace: %s", nss[i].name, strerror(errno));
        close(ns_fd[i]);
    }

    sigset_t mask, old;
    sigemptyset(&mask);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&mask, sigs[i]);
    sigprocmask(SIG_BLOCK, &mask, &old);
    /* the PID namespace join applies to children only */
    /* the command gets its own process group, so a kill request reaches everything it started (not with
     * a terminal on stdin: a background group could not read from it) */
    int own_group = !isatty(0);
    pid_t child = fork();
    if (child < 0) child_fail("fork: %s", strerror(errno));
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (own_group) setpgid(0, 0);
        if (workdir_given ? chdir(workdir) < 0 : fchdir(cwd_fd) < 0)
            child_fail("chdir %s: %s", workdir_given ? workdir : "(PID 1's working directory)", strerror(errno));
        if (cwd_fd >= 0) close(cwd_fd);
        harden(last_cap);
        const char *path_env;
        char **envp = build_env(base_env, n_base, &path_env);
        if (seccomp_enabled) install_seccomp();
        exec_cmd(envp, path_env);
    }
    if (own_group) setpgid(child, child); /* also from here: whichever runs first, the group exists */
    /* SIGTERM is a kill request (a timed-out health probe): SIGKILL to the command's whole group. Other
     * signals are forwarded to the command. */
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&mask, &si);
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            int st;
            pid_t w = waitpid(child, &st, WNOHANG);
            if (w == child) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        } else if (sig == SIGTERM) {
            kill(own_group ? -child : child, SIGKILL);
        } else {
            kill(child, sig);
        }
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec") == 0) return exec_main(argc - 1, argv + 1);
    parse_args(argc, argv);

    /* absolute paths: we chdir("/") when daemonizing */
    static char sd[PATH_MAX], rf[PATH_MAX];
    mkdir(state_dir, 0700);
    if (!realpath(state_dir, sd)) die("state dir %s: %s", state_dir, strerror(errno));
    state_dir = sd;
    struct stat st;
    if (!realpath(rootfs, rf) || stat(rf, &st) < 0) die("rootfs %s: %s", rootfs, strerror(errno));
    if (!S_ISDIR(st.st_mode)) die("rootfs %s: not a directory", rootfs);
    rootfs = rf;
    static char lp[PATH_MAX * 2 + 2];
    if (!log_path) log_path = path_in(state_dir, "container.log");
    else if (log_path[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) die("getcwd: %s", strerror(errno));
        snprintf(lp, sizeof lp, "%s/%s", cwd, log_path);
        log_path = lp;
    }
    for (int i = 0; i < n_cgroups; i++) {
        if (cgroups[i][0] != '/') die("--cgroup must be absolute: %s", cgroups[i]);
        char *p = path_in(cgroups[i], "cgroup.procs");
        if (access(p, W_OK) < 0) die("cgroup %s: %s", cgroups[i], strerror(errno));
        free(p);
    }
    for (int i = 0; i < n_mounts; i++)
        if (mounts[i].type == MOUNT_BIND && access(mounts[i].src, F_OK) < 0)
            die("bind source %s: %s", mounts[i].src, strerror(errno));
    if (netns_path) {
        /* opened now so a bad path fails the start; the fd survives the daemonizing forks */
        netns_fd = open(netns_path, O_RDONLY | O_CLOEXEC);
        if (netns_fd < 0) die("netns %s: %s", netns_path, strerror(errno));
        if (ioctl(netns_fd, NS_GET_NSTYPE) != CLONE_NEWNET) die("netns %s: not a network namespace", netns_path);
    }
    { char *old = path_in(state_dir, "state.json"); unlink(old); free(old); }
    { char *old = path_in(state_dir, "stop-grace-ms"); unlink(old); free(old); }

    /* daemonize: fork, setsid, fork again; the caller returns as soon as the middle process exits */
    pid_t p1 = fork();
    if (p1 < 0) die("fork: %s", strerror(errno));
    if (p1 > 0) {
        int status;
        while (waitpid(p1, &status, 0) < 0 && errno == EINTR) {}
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (setsid() < 0) _exit(1);
    pid_t p2 = fork();
    if (p2 < 0) _exit(1);
    if (p2 > 0) _exit(0);

    if (chdir("/") < 0) _exit(1);
    umask(022);
    {
        int dn = open("/dev/null", O_RDWR);
        char *slog = path_in(state_dir, "shim.log");
        int lf = open(slog, O_WRONLY | O_CREAT | O_APPEND, 0640);
        free(slog);
        if (dn >= 0) { dup2(dn, 0); dup2(dn, 1); if (dn > 2) close(dn); }
        if (lf >= 0) { dup2(lf, 2); if (lf > 2) close(lf); }
    }
    shim_start_time = proc_start_time(getpid());
    {
        char *pf = path_in(state_dir, "shim.pid"), *tmp = path_in(state_dir, "shim.pid.tmp"), b[32];
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) { int n = snprintf(b, sizeof b, "%d\n", (int)getpid()); write_all(fd, b, (size_t)n); close(fd); rename(tmp, pf); }
        free(pf); free(tmp);
    }
    write_state("\"status\":\"starting\"");

    sigset_t mask;
    sigemptyset(&mask);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&mask, sigs[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) { write_failed("signalfd failed"); return 1; }

    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0 ||
        pipe2(errout_pipe, O_CLOEXEC) < 0) {
        write_failed("pipe failed");
        return 1;
    }
    log_open();

    int oom_have = 0;
    long long oom_before = oom_kills(&oom_have);

    size_t stack_size = 1024 * 1024;
    char *stack = malloc(stack_size);
    if (!stack) { write_failed("out of memory"); return 1; }
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | SIGCHLD;
    if (!netns_path && !net_host) flags |= CLONE_NEWNET;
    pid_t child = clone(child_main, stack + stack_size, flags, NULL);
    if (child < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "clone: %s", strerror(errno));
        write_failed(msg);
        return 1;
    }
    close(sync_pipe[0]); close(err_pipe[1]); close(out_pipe[1]); close(errout_pipe[1]);

    /* join cgroups before the child may exec anything */
    for (int i = 0; i < n_cgroups; i++) {
        char *p = path_in(cgroups[i], "cgroup.procs"), b[32];
        int fd = open(p, O_WRONLY | O_CLOEXEC), ok = 0;
        if (fd >= 0) {
            int n = snprintf(b, sizeof b, "%d", (int)child);
            ok = write_all(fd, b, (size_t)n) == 0;
            close(fd);
        }
        if (!ok) {
            char msg[PATH_MAX + 128];
            snprintf(msg, sizeof msg, "join cgroup %s: %s", cgroups[i], strerror(errno));
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            write_failed(msg);
            return 1;
        }
        free(p);
    }
    if (write_all(sync_pipe[1], "g", 1) < 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); write_failed("sync pipe write failed"); return 1; }
    close(sync_pipe[1]);

    /* wait for exec (EOF on err_pipe) or a setup error message */
    char errbuf[2049];
    size_t elen = 0;
    for (;;) {
        ssize_t n = read(err_pipe[0], errbuf + elen, sizeof errbuf - 1 - elen);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        elen += (size_t)n;
        if (elen >= sizeof errbuf - 1) break;
    }
    close(err_pipe[0]);
    errbuf[elen] = 0;
    if (elen > 0) {
        waitpid(child, NULL, 0);
        write_failed(errbuf);
        return 1;
    }

    iso_now(started_at, sizeof started_at);
    {
        char body[256];
        snprintf(body, sizeof body, "\"status\":\"running\",\"pid\":%d,\"startedAt\":\"%s\"", (int)child, started_at);
        write_state(body);
    }

    struct stream outs = {.fd = out_pipe[0], .name = "stdout"}, errs = {.fd = errout_pipe[0], .name = "stderr"};
    int exited = 0, status = 0, we_killed = 0;
    long long kill_deadline = -1, drain_deadline = -1;
    while (!exited || outs.fd >= 0 || errs.fd >= 0) {
        struct pollfd pf[3];
        int np = 0;
        pf[np].fd = sfd; pf[np].events = POLLIN; np++;
        int io = np;
        if (outs.fd >= 0) { pf[np].fd = outs.fd; pf[np].events = POLLIN; np++; }
        if (errs.fd >= 0) { pf[np].fd = errs.fd; pf[np].events = POLLIN; np++; }
        int timeout = -1;
        long long now = mono_ms();
        if (!exited && kill_deadline >= 0) timeout = kill_deadline > now ? (int)(kill_deadline - now) : 0;
        if (exited) {
            if (drain_deadline < 0) drain_deadline = now + 2000;
            timeout = drain_deadline > now ? (int)(drain_deadline - now) : 0;
        }
        int r = poll(pf, (nfds_t)np, timeout);
        if (r < 0 && errno != EINTR) break;
        now = mono_ms();
        if (!exited && kill_deadline >= 0 && now >= kill_deadline) {
            kill(child, SIGKILL);
            we_killed = 1;
            kill_deadline = -1;
        }
        if (exited && now >= drain_deadline) break; /* something in the namespace still holds the pipes */
        if (r <= 0) continue;
        for (int i = io; i < np; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (pf[i].fd == outs.fd) pump(&outs);
            else if (pf[i].fd == errs.fd) pump(&errs);
        }
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                int sig = (int)si.ssi_signo;
                if (sig == SIGCHLD) {
                    int stt;
                    pid_t w;
                    while ((w = waitpid(-1, &stt, WNOHANG)) > 0)
                        if (w == child) { exited = 1; status = stt; }
                } else if (sig == SIGTERM && !exited) {
                    if (kill_deadline < 0) {
                        long g = read_stop_grace_override();
                        if (g < 0) g = stop_grace_ms;
                        kill(child, stop_signal);
                        if (stop_signal == SIGKILL) we_killed = 1;
                        kill_deadline = mono_ms() + g;
                    }
                } else if (!exited) {
                    kill(child, sig); /* forward SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2, SIGWINCH */
                }
            }
        }
    }
    if (!exited) {
        int stt;
        if (waitpid(child, &stt, 0) == child) status = stt;
    }
    if (outs.fd >= 0) { if (outs.len) log_line("stdout", outs.buf, outs.len, 0); close(outs.fd); }
    if (errs.fd >= 0) { if (errs.len) log_line("stderr", errs.buf, errs.len, 0); close(errs.fd); }
    if (log_fd >= 0) { fsync(log_fd); close(log_fd); }

    int exit_code, sig = 0;
    if (WIFEXITED(status)) exit_code = WEXITSTATUS(status);
    else { sig = WTERMSIG(status); exit_code = 128 + sig; }
    int have2 = 0;
    long long oom_after = oom_kills(&have2);
    int oom = 0;
    if (oom_have && have2) oom = oom_after > oom_before;
    else oom = sig == SIGKILL && !we_killed && memory_limit_hit();

    char now[40], body[512], sigbuf[16];
    iso_now(now, sizeof now);
    if (sig) snprintf(sigbuf, sizeof sigbuf, "%d", sig); else strcpy(sigbuf, "null");
    snprintf(body, sizeof body,
             "\"status\":\"exited\",\"pid\":%d,\"exitCode\":%d,\"signal\":%s,\"oomKilled\":%s,\"startedAt\":\"%s\",\"finishedAt\":\"%s\"",
             (int)child, exit_code, sigbuf, oom ? "true" : "false", started_at, now);
    write_state(body);
    return 0;
}
