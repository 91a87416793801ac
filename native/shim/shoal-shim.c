/*
 * shoal-shim: per-container monitor for Shoal's own container engine.
 *
 *   shoal-shim --state-dir DIR --rootfs DIR [--hostname H] [--workdir W] [--user UID:GID]
 *              [--env K=V]... [--cgroup PATH]... [--log FILE] [--log-max-bytes N]
 *              [--stop-grace-ms N] [--stop-signal SIG] [--no-seccomp | --seccomp-profile FILE]
 *              [--caps N,N,...|none] [--ulimit NAME=SOFT[:HARD]]... [--sysctl KEY=VALUE]...
 *              [--read-only] [--init] [--devices-bpf CGROUP2_DIR]
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
#include <dirent.h>
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
#include <linux/bpf.h>
#include <sys/sendfile.h>
#include <sys/statvfs.h>
#include <sys/mman.h>
#include <stddef.h>
#include <stdint.h>

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
static const char *seccomp_profile; /* --seccomp-profile: a compiled profile (see load_profile) */
/* capabilities of the container's processes (bit N = capability N); Docker's default set unless --caps */
static uint64_t cap_mask;
static int caps_given;
/* --ulimit, and in exec mode PID 1's limits (all of them) */
struct ulimit_spec { int resource; struct rlimit rl; };
static struct ulimit_spec ulimits[MAX_LIST];
static int n_ulimits;
static const char *sysctls[MAX_LIST]; /* KEY=VALUE, written in the container's own namespaces */
static int n_sysctls;
static int read_only_root; /* --read-only */
static int init_mode;      /* --init: a reaper as PID 1, the command as its child */
static const char *devices_bpf_dir; /* --devices-bpf: attach the device allowlist program (cgroup v2) */
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
    /* snprintf returns what it would have written: never write past what it did (a long error is cut,
     * which leaves invalid JSON rather than stack bytes; write_failed keeps its text short enough) */
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    write_all(fd, buf, (size_t)n);
    fsync(fd);
    close(fd);
    if (rename(tmp, fin) < 0) fprintf(stderr, "shoal-shim: rename state: %s\n", strerror(errno));
out:
    free(tmp); free(fin);
}

static void write_failed(const char *msg) {
    char esc[1200 * 6 + 1], body[8000], now[40];
    size_t len = strlen(msg);
    if (len > 1200) len = 1200; /* escaped, at most 7200 bytes: the whole record fits write_state's buffer */
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

static uint64_t default_cap_mask(void) {
    uint64_t m = 0;
    for (size_t i = 0; i < sizeof default_caps / sizeof default_caps[0]; i++) m |= 1ull << default_caps[i];
    return m;
}

static int cap_in_set(int c) {
    return c >= 0 && c < 64 && (cap_mask >> c) & 1;
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
            if (!cap_in_set(c)) continue;
            data[c / 32].effective |= 1u << (c % 32);
            data[c / 32].permitted |= 1u << (c % 32);
        }
    }
    /* non-root users get empty effective/permitted sets, as with Docker */
    if (syscall(SYS_capset, &hdr, data) < 0) child_fail("capset: %s", strerror(errno));
}

/* ---- seccomp: an allowlist in classic BPF (no libseccomp) ----
 * The default filter allows the syscalls ordinary programs use (allow_always, below) and answers EPERM
 * to everything else, including syscalls future kernels add. Some syscalls are allowed only when the
 * container holds the capability the kernel would check anyway (allow_with_cap: mount and the namespace
 * calls with CAP_SYS_ADMIN, settimeofday with CAP_SYS_TIME, ...), so --cap-add keeps its meaning. Special
 * cases: clone asking for a new namespace fails with EPERM (without CAP_SYS_ADMIN: a user namespace needs
 * no capability and would hand out a full capability set inside it); clone3 passes its flags in memory,
 * which classic BPF cannot read, so it answers ENOSYS and libc falls back to clone; personality accepts
 * only the harmless personas (Linux, 32-bit Linux, the uname-26 quirk, and a query). io_uring is refused
 * whatever the capabilities (it bypasses this filter for the operations it queues). A foreign
 * architecture kills the process; on x86_64 the x32 ABI is refused.
 * The syscall numbers come from the kernel headers at build time: a name missing on this architecture
 * has number -1 and is left out. The filter is a balanced binary search over the sorted numbers, so a
 * syscall costs about log2(300) comparisons. */
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

/* ---- BEGIN GENERATED (native/shim: see the comment above; one name per syscall) ---- */
#ifndef __NR_accept
#define __NR_accept (-1)
#endif
#ifndef __NR_accept4
#define __NR_accept4 (-1)
#endif
#ifndef __NR_access
#define __NR_access (-1)
#endif
#ifndef __NR_alarm
#define __NR_alarm (-1)
#endif
#ifndef __NR_arch_prctl
#define __NR_arch_prctl (-1)
#endif
#ifndef __NR_bind
#define __NR_bind (-1)
#endif
#ifndef __NR_brk
#define __NR_brk (-1)
#endif
#ifndef __NR_cachestat
#define __NR_cachestat (-1)
#endif
#ifndef __NR_capget
#define __NR_capget (-1)
#endif
#ifndef __NR_capset
#define __NR_capset (-1)
#endif
#ifndef __NR_chdir
#define __NR_chdir (-1)
#endif
#ifndef __NR_chmod
#define __NR_chmod (-1)
#endif
#ifndef __NR_chown
#define __NR_chown (-1)
#endif
#ifndef __NR_chroot
#define __NR_chroot (-1)
#endif
#ifndef __NR_clock_getres
#define __NR_clock_getres (-1)
#endif
#ifndef __NR_clock_gettime
#define __NR_clock_gettime (-1)
#endif
#ifndef __NR_clock_nanosleep
#define __NR_clock_nanosleep (-1)
#endif
#ifndef __NR_close
#define __NR_close (-1)
#endif
#ifndef __NR_close_range
#define __NR_close_range (-1)
#endif
#ifndef __NR_connect
#define __NR_connect (-1)
#endif
#ifndef __NR_copy_file_range
#define __NR_copy_file_range (-1)
#endif
#ifndef __NR_creat
#define __NR_creat (-1)
#endif
#ifndef __NR_dup
#define __NR_dup (-1)
#endif
#ifndef __NR_dup2
#define __NR_dup2 (-1)
#endif
#ifndef __NR_dup3
#define __NR_dup3 (-1)
#endif
#ifndef __NR_epoll_create
#define __NR_epoll_create (-1)
#endif
#ifndef __NR_epoll_create1
#define __NR_epoll_create1 (-1)
#endif
#ifndef __NR_epoll_ctl
#define __NR_epoll_ctl (-1)
#endif
#ifndef __NR_epoll_ctl_old
#define __NR_epoll_ctl_old (-1)
#endif
#ifndef __NR_epoll_pwait
#define __NR_epoll_pwait (-1)
#endif
#ifndef __NR_epoll_pwait2
#define __NR_epoll_pwait2 (-1)
#endif
#ifndef __NR_epoll_wait
#define __NR_epoll_wait (-1)
#endif
#ifndef __NR_epoll_wait_old
#define __NR_epoll_wait_old (-1)
#endif
#ifndef __NR_eventfd
#define __NR_eventfd (-1)
#endif
#ifndef __NR_eventfd2
#define __NR_eventfd2 (-1)
#endif
#ifndef __NR_execve
#define __NR_execve (-1)
#endif
#ifndef __NR_execveat
#define __NR_execveat (-1)
#endif
#ifndef __NR_exit
#define __NR_exit (-1)
#endif
#ifndef __NR_exit_group
#define __NR_exit_group (-1)
#endif
#ifndef __NR_faccessat
#define __NR_faccessat (-1)
#endif
#ifndef __NR_faccessat2
#define __NR_faccessat2 (-1)
#endif
#ifndef __NR_fadvise64
#define __NR_fadvise64 (-1)
#endif
#ifndef __NR_fallocate
#define __NR_fallocate (-1)
#endif
#ifndef __NR_fanotify_mark
#define __NR_fanotify_mark (-1)
#endif
#ifndef __NR_fchdir
#define __NR_fchdir (-1)
#endif
#ifndef __NR_fchmod
#define __NR_fchmod (-1)
#endif
#ifndef __NR_fchmodat
#define __NR_fchmodat (-1)
#endif
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 (-1)
#endif
#ifndef __NR_fchown
#define __NR_fchown (-1)
#endif
#ifndef __NR_fchownat
#define __NR_fchownat (-1)
#endif
#ifndef __NR_fcntl
#define __NR_fcntl (-1)
#endif
#ifndef __NR_fdatasync
#define __NR_fdatasync (-1)
#endif
#ifndef __NR_fgetxattr
#define __NR_fgetxattr (-1)
#endif
#ifndef __NR_flistxattr
#define __NR_flistxattr (-1)
#endif
#ifndef __NR_flock
#define __NR_flock (-1)
#endif
#ifndef __NR_fork
#define __NR_fork (-1)
#endif
#ifndef __NR_fremovexattr
#define __NR_fremovexattr (-1)
#endif
#ifndef __NR_fsetxattr
#define __NR_fsetxattr (-1)
#endif
#ifndef __NR_fstat
#define __NR_fstat (-1)
#endif
#ifndef __NR_fstatfs
#define __NR_fstatfs (-1)
#endif
#ifndef __NR_fsync
#define __NR_fsync (-1)
#endif
#ifndef __NR_ftruncate
#define __NR_ftruncate (-1)
#endif
#ifndef __NR_futex
#define __NR_futex (-1)
#endif
#ifndef __NR_futex_requeue
#define __NR_futex_requeue (-1)
#endif
#ifndef __NR_futex_wait
#define __NR_futex_wait (-1)
#endif
#ifndef __NR_futex_waitv
#define __NR_futex_waitv (-1)
#endif
#ifndef __NR_futex_wake
#define __NR_futex_wake (-1)
#endif
#ifndef __NR_futimesat
#define __NR_futimesat (-1)
#endif
#ifndef __NR_getcpu
#define __NR_getcpu (-1)
#endif
#ifndef __NR_getcwd
#define __NR_getcwd (-1)
#endif
#ifndef __NR_getdents
#define __NR_getdents (-1)
#endif
#ifndef __NR_getdents64
#define __NR_getdents64 (-1)
#endif
#ifndef __NR_getegid
#define __NR_getegid (-1)
#endif
#ifndef __NR_geteuid
#define __NR_geteuid (-1)
#endif
#ifndef __NR_getgid
#define __NR_getgid (-1)
#endif
#ifndef __NR_getgroups
#define __NR_getgroups (-1)
#endif
#ifndef __NR_getitimer
#define __NR_getitimer (-1)
#endif
#ifndef __NR_getpeername
#define __NR_getpeername (-1)
#endif
#ifndef __NR_getpgid
#define __NR_getpgid (-1)
#endif
#ifndef __NR_getpgrp
#define __NR_getpgrp (-1)
#endif
#ifndef __NR_getpid
#define __NR_getpid (-1)
#endif
#ifndef __NR_getppid
#define __NR_getppid (-1)
#endif
#ifndef __NR_getpriority
#define __NR_getpriority (-1)
#endif
#ifndef __NR_getrandom
#define __NR_getrandom (-1)
#endif
#ifndef __NR_getresgid
#define __NR_getresgid (-1)
#endif
#ifndef __NR_getresuid
#define __NR_getresuid (-1)
#endif
#ifndef __NR_getrlimit
#define __NR_getrlimit (-1)
#endif
#ifndef __NR_get_robust_list
#define __NR_get_robust_list (-1)
#endif
#ifndef __NR_getrusage
#define __NR_getrusage (-1)
#endif
#ifndef __NR_getsid
#define __NR_getsid (-1)
#endif
#ifndef __NR_getsockname
#define __NR_getsockname (-1)
#endif
#ifndef __NR_getsockopt
#define __NR_getsockopt (-1)
#endif
#ifndef __NR_get_thread_area
#define __NR_get_thread_area (-1)
#endif
#ifndef __NR_gettid
#define __NR_gettid (-1)
#endif
#ifndef __NR_gettimeofday
#define __NR_gettimeofday (-1)
#endif
#ifndef __NR_getuid
#define __NR_getuid (-1)
#endif
#ifndef __NR_getxattr
#define __NR_getxattr (-1)
#endif
#ifndef __NR_getxattrat
#define __NR_getxattrat (-1)
#endif
#ifndef __NR_listxattrat
#define __NR_listxattrat (-1)
#endif
#ifndef __NR_setxattrat
#define __NR_setxattrat (-1)
#endif
#ifndef __NR_removexattrat
#define __NR_removexattrat (-1)
#endif
#ifndef __NR_inotify_add_watch
#define __NR_inotify_add_watch (-1)
#endif
#ifndef __NR_inotify_init
#define __NR_inotify_init (-1)
#endif
#ifndef __NR_inotify_init1
#define __NR_inotify_init1 (-1)
#endif
#ifndef __NR_inotify_rm_watch
#define __NR_inotify_rm_watch (-1)
#endif
#ifndef __NR_io_cancel
#define __NR_io_cancel (-1)
#endif
#ifndef __NR_ioctl
#define __NR_ioctl (-1)
#endif
#ifndef __NR_io_destroy
#define __NR_io_destroy (-1)
#endif
#ifndef __NR_io_getevents
#define __NR_io_getevents (-1)
#endif
#ifndef __NR_io_pgetevents
#define __NR_io_pgetevents (-1)
#endif
#ifndef __NR_ioprio_get
#define __NR_ioprio_get (-1)
#endif
#ifndef __NR_ioprio_set
#define __NR_ioprio_set (-1)
#endif
#ifndef __NR_io_setup
#define __NR_io_setup (-1)
#endif
#ifndef __NR_io_submit
#define __NR_io_submit (-1)
#endif
#ifndef __NR_kill
#define __NR_kill (-1)
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule (-1)
#endif
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset (-1)
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self (-1)
#endif
#ifndef __NR_lchown
#define __NR_lchown (-1)
#endif
#ifndef __NR_lgetxattr
#define __NR_lgetxattr (-1)
#endif
#ifndef __NR_link
#define __NR_link (-1)
#endif
#ifndef __NR_linkat
#define __NR_linkat (-1)
#endif
#ifndef __NR_listen
#define __NR_listen (-1)
#endif
#ifndef __NR_listxattr
#define __NR_listxattr (-1)
#endif
#ifndef __NR_llistxattr
#define __NR_llistxattr (-1)
#endif
#ifndef __NR_lremovexattr
#define __NR_lremovexattr (-1)
#endif
#ifndef __NR_lseek
#define __NR_lseek (-1)
#endif
#ifndef __NR_lsetxattr
#define __NR_lsetxattr (-1)
#endif
#ifndef __NR_lstat
#define __NR_lstat (-1)
#endif
#ifndef __NR_lsm_get_self_attr
#define __NR_lsm_get_self_attr (-1)
#endif
#ifndef __NR_lsm_list_modules
#define __NR_lsm_list_modules (-1)
#endif
#ifndef __NR_madvise
#define __NR_madvise (-1)
#endif
#ifndef __NR_map_shadow_stack
#define __NR_map_shadow_stack (-1)
#endif
#ifndef __NR_membarrier
#define __NR_membarrier (-1)
#endif
#ifndef __NR_memfd_create
#define __NR_memfd_create (-1)
#endif
#ifndef __NR_memfd_secret
#define __NR_memfd_secret (-1)
#endif
#ifndef __NR_mincore
#define __NR_mincore (-1)
#endif
#ifndef __NR_mkdir
#define __NR_mkdir (-1)
#endif
#ifndef __NR_mkdirat
#define __NR_mkdirat (-1)
#endif
#ifndef __NR_mknod
#define __NR_mknod (-1)
#endif
#ifndef __NR_mknodat
#define __NR_mknodat (-1)
#endif
#ifndef __NR_mlock
#define __NR_mlock (-1)
#endif
#ifndef __NR_mlock2
#define __NR_mlock2 (-1)
#endif
#ifndef __NR_mlockall
#define __NR_mlockall (-1)
#endif
#ifndef __NR_mmap
#define __NR_mmap (-1)
#endif
#ifndef __NR_modify_ldt
#define __NR_modify_ldt (-1)
#endif
#ifndef __NR_mprotect
#define __NR_mprotect (-1)
#endif
#ifndef __NR_mq_getsetattr
#define __NR_mq_getsetattr (-1)
#endif
#ifndef __NR_mq_notify
#define __NR_mq_notify (-1)
#endif
#ifndef __NR_mq_open
#define __NR_mq_open (-1)
#endif
#ifndef __NR_mq_timedreceive
#define __NR_mq_timedreceive (-1)
#endif
#ifndef __NR_mq_timedsend
#define __NR_mq_timedsend (-1)
#endif
#ifndef __NR_mq_unlink
#define __NR_mq_unlink (-1)
#endif
#ifndef __NR_mremap
#define __NR_mremap (-1)
#endif
#ifndef __NR_mseal
#define __NR_mseal (-1)
#endif
#ifndef __NR_msgctl
#define __NR_msgctl (-1)
#endif
#ifndef __NR_msgget
#define __NR_msgget (-1)
#endif
#ifndef __NR_msgrcv
#define __NR_msgrcv (-1)
#endif
#ifndef __NR_msgsnd
#define __NR_msgsnd (-1)
#endif
#ifndef __NR_msync
#define __NR_msync (-1)
#endif
#ifndef __NR_munlock
#define __NR_munlock (-1)
#endif
#ifndef __NR_munlockall
#define __NR_munlockall (-1)
#endif
#ifndef __NR_munmap
#define __NR_munmap (-1)
#endif
#ifndef __NR_nanosleep
#define __NR_nanosleep (-1)
#endif
#ifndef __NR_newfstatat
#define __NR_newfstatat (-1)
#endif
#ifndef __NR_open
#define __NR_open (-1)
#endif
#ifndef __NR_openat
#define __NR_openat (-1)
#endif
#ifndef __NR_openat2
#define __NR_openat2 (-1)
#endif
#ifndef __NR_pause
#define __NR_pause (-1)
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open (-1)
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal (-1)
#endif
#ifndef __NR_pipe
#define __NR_pipe (-1)
#endif
#ifndef __NR_pipe2
#define __NR_pipe2 (-1)
#endif
#ifndef __NR_pkey_alloc
#define __NR_pkey_alloc (-1)
#endif
#ifndef __NR_pkey_free
#define __NR_pkey_free (-1)
#endif
#ifndef __NR_pkey_mprotect
#define __NR_pkey_mprotect (-1)
#endif
#ifndef __NR_poll
#define __NR_poll (-1)
#endif
#ifndef __NR_ppoll
#define __NR_ppoll (-1)
#endif
#ifndef __NR_prctl
#define __NR_prctl (-1)
#endif
#ifndef __NR_pread64
#define __NR_pread64 (-1)
#endif
#ifndef __NR_preadv
#define __NR_preadv (-1)
#endif
#ifndef __NR_preadv2
#define __NR_preadv2 (-1)
#endif
#ifndef __NR_prlimit64
#define __NR_prlimit64 (-1)
#endif
#ifndef __NR_process_mrelease
#define __NR_process_mrelease (-1)
#endif
#ifndef __NR_pselect6
#define __NR_pselect6 (-1)
#endif
#ifndef __NR_ptrace
#define __NR_ptrace (-1)
#endif
#ifndef __NR_pwrite64
#define __NR_pwrite64 (-1)
#endif
#ifndef __NR_pwritev
#define __NR_pwritev (-1)
#endif
#ifndef __NR_pwritev2
#define __NR_pwritev2 (-1)
#endif
#ifndef __NR_read
#define __NR_read (-1)
#endif
#ifndef __NR_readahead
#define __NR_readahead (-1)
#endif
#ifndef __NR_readlink
#define __NR_readlink (-1)
#endif
#ifndef __NR_readlinkat
#define __NR_readlinkat (-1)
#endif
#ifndef __NR_readv
#define __NR_readv (-1)
#endif
#ifndef __NR_recvfrom
#define __NR_recvfrom (-1)
#endif
#ifndef __NR_recvmmsg
#define __NR_recvmmsg (-1)
#endif
#ifndef __NR_recvmsg
#define __NR_recvmsg (-1)
#endif
#ifndef __NR_remap_file_pages
#define __NR_remap_file_pages (-1)
#endif
#ifndef __NR_removexattr
#define __NR_removexattr (-1)
#endif
#ifndef __NR_rename
#define __NR_rename (-1)
#endif
#ifndef __NR_renameat
#define __NR_renameat (-1)
#endif
#ifndef __NR_renameat2
#define __NR_renameat2 (-1)
#endif
#ifndef __NR_restart_syscall
#define __NR_restart_syscall (-1)
#endif
#ifndef __NR_rmdir
#define __NR_rmdir (-1)
#endif
#ifndef __NR_rseq
#define __NR_rseq (-1)
#endif
#ifndef __NR_rt_sigaction
#define __NR_rt_sigaction (-1)
#endif
#ifndef __NR_rt_sigpending
#define __NR_rt_sigpending (-1)
#endif
#ifndef __NR_rt_sigprocmask
#define __NR_rt_sigprocmask (-1)
#endif
#ifndef __NR_rt_sigqueueinfo
#define __NR_rt_sigqueueinfo (-1)
#endif
#ifndef __NR_rt_sigreturn
#define __NR_rt_sigreturn (-1)
#endif
#ifndef __NR_rt_sigsuspend
#define __NR_rt_sigsuspend (-1)
#endif
#ifndef __NR_rt_sigtimedwait
#define __NR_rt_sigtimedwait (-1)
#endif
#ifndef __NR_rt_tgsigqueueinfo
#define __NR_rt_tgsigqueueinfo (-1)
#endif
#ifndef __NR_sched_getaffinity
#define __NR_sched_getaffinity (-1)
#endif
#ifndef __NR_sched_getattr
#define __NR_sched_getattr (-1)
#endif
#ifndef __NR_sched_getparam
#define __NR_sched_getparam (-1)
#endif
#ifndef __NR_sched_get_priority_max
#define __NR_sched_get_priority_max (-1)
#endif
#ifndef __NR_sched_get_priority_min
#define __NR_sched_get_priority_min (-1)
#endif
#ifndef __NR_sched_getscheduler
#define __NR_sched_getscheduler (-1)
#endif
#ifndef __NR_sched_rr_get_interval
#define __NR_sched_rr_get_interval (-1)
#endif
#ifndef __NR_sched_setaffinity
#define __NR_sched_setaffinity (-1)
#endif
#ifndef __NR_sched_setattr
#define __NR_sched_setattr (-1)
#endif
#ifndef __NR_sched_setparam
#define __NR_sched_setparam (-1)
#endif
#ifndef __NR_sched_setscheduler
#define __NR_sched_setscheduler (-1)
#endif
#ifndef __NR_sched_yield
#define __NR_sched_yield (-1)
#endif
#ifndef __NR_seccomp
#define __NR_seccomp (-1)
#endif
#ifndef __NR_select
#define __NR_select (-1)
#endif
#ifndef __NR_semctl
#define __NR_semctl (-1)
#endif
#ifndef __NR_semget
#define __NR_semget (-1)
#endif
#ifndef __NR_semop
#define __NR_semop (-1)
#endif
#ifndef __NR_semtimedop
#define __NR_semtimedop (-1)
#endif
#ifndef __NR_sendfile
#define __NR_sendfile (-1)
#endif
#ifndef __NR_sendmmsg
#define __NR_sendmmsg (-1)
#endif
#ifndef __NR_sendmsg
#define __NR_sendmsg (-1)
#endif
#ifndef __NR_sendto
#define __NR_sendto (-1)
#endif
#ifndef __NR_setdomainname
#define __NR_setdomainname (-1)
#endif
#ifndef __NR_setfsgid
#define __NR_setfsgid (-1)
#endif
#ifndef __NR_setfsuid
#define __NR_setfsuid (-1)
#endif
#ifndef __NR_setgid
#define __NR_setgid (-1)
#endif
#ifndef __NR_setgroups
#define __NR_setgroups (-1)
#endif
#ifndef __NR_sethostname
#define __NR_sethostname (-1)
#endif
#ifndef __NR_setitimer
#define __NR_setitimer (-1)
#endif
#ifndef __NR_setpgid
#define __NR_setpgid (-1)
#endif
#ifndef __NR_setpriority
#define __NR_setpriority (-1)
#endif
#ifndef __NR_setregid
#define __NR_setregid (-1)
#endif
#ifndef __NR_setresgid
#define __NR_setresgid (-1)
#endif
#ifndef __NR_setresuid
#define __NR_setresuid (-1)
#endif
#ifndef __NR_setreuid
#define __NR_setreuid (-1)
#endif
#ifndef __NR_setrlimit
#define __NR_setrlimit (-1)
#endif
#ifndef __NR_set_robust_list
#define __NR_set_robust_list (-1)
#endif
#ifndef __NR_setsid
#define __NR_setsid (-1)
#endif
#ifndef __NR_setsockopt
#define __NR_setsockopt (-1)
#endif
#ifndef __NR_set_thread_area
#define __NR_set_thread_area (-1)
#endif
#ifndef __NR_set_tid_address
#define __NR_set_tid_address (-1)
#endif
#ifndef __NR_setuid
#define __NR_setuid (-1)
#endif
#ifndef __NR_setxattr
#define __NR_setxattr (-1)
#endif
#ifndef __NR_shmat
#define __NR_shmat (-1)
#endif
#ifndef __NR_shmctl
#define __NR_shmctl (-1)
#endif
#ifndef __NR_shmdt
#define __NR_shmdt (-1)
#endif
#ifndef __NR_shmget
#define __NR_shmget (-1)
#endif
#ifndef __NR_shutdown
#define __NR_shutdown (-1)
#endif
#ifndef __NR_sigaltstack
#define __NR_sigaltstack (-1)
#endif
#ifndef __NR_signalfd
#define __NR_signalfd (-1)
#endif
#ifndef __NR_signalfd4
#define __NR_signalfd4 (-1)
#endif
#ifndef __NR_socket
#define __NR_socket (-1)
#endif
#ifndef __NR_socketpair
#define __NR_socketpair (-1)
#endif
#ifndef __NR_splice
#define __NR_splice (-1)
#endif
#ifndef __NR_stat
#define __NR_stat (-1)
#endif
#ifndef __NR_statfs
#define __NR_statfs (-1)
#endif
#ifndef __NR_statx
#define __NR_statx (-1)
#endif
#ifndef __NR_symlink
#define __NR_symlink (-1)
#endif
#ifndef __NR_symlinkat
#define __NR_symlinkat (-1)
#endif
#ifndef __NR_sync
#define __NR_sync (-1)
#endif
#ifndef __NR_sync_file_range
#define __NR_sync_file_range (-1)
#endif
#ifndef __NR_syncfs
#define __NR_syncfs (-1)
#endif
#ifndef __NR_sysinfo
#define __NR_sysinfo (-1)
#endif
#ifndef __NR_tee
#define __NR_tee (-1)
#endif
#ifndef __NR_tgkill
#define __NR_tgkill (-1)
#endif
#ifndef __NR_time
#define __NR_time (-1)
#endif
#ifndef __NR_timer_create
#define __NR_timer_create (-1)
#endif
#ifndef __NR_timer_delete
#define __NR_timer_delete (-1)
#endif
#ifndef __NR_timer_getoverrun
#define __NR_timer_getoverrun (-1)
#endif
#ifndef __NR_timer_gettime
#define __NR_timer_gettime (-1)
#endif
#ifndef __NR_timer_settime
#define __NR_timer_settime (-1)
#endif
#ifndef __NR_timerfd_create
#define __NR_timerfd_create (-1)
#endif
#ifndef __NR_timerfd_gettime
#define __NR_timerfd_gettime (-1)
#endif
#ifndef __NR_timerfd_settime
#define __NR_timerfd_settime (-1)
#endif
#ifndef __NR_times
#define __NR_times (-1)
#endif
#ifndef __NR_tkill
#define __NR_tkill (-1)
#endif
#ifndef __NR_truncate
#define __NR_truncate (-1)
#endif
#ifndef __NR_umask
#define __NR_umask (-1)
#endif
#ifndef __NR_uname
#define __NR_uname (-1)
#endif
#ifndef __NR_unlink
#define __NR_unlink (-1)
#endif
#ifndef __NR_unlinkat
#define __NR_unlinkat (-1)
#endif
#ifndef __NR_utime
#define __NR_utime (-1)
#endif
#ifndef __NR_utimensat
#define __NR_utimensat (-1)
#endif
#ifndef __NR_utimes
#define __NR_utimes (-1)
#endif
#ifndef __NR_vfork
#define __NR_vfork (-1)
#endif
#ifndef __NR_vmsplice
#define __NR_vmsplice (-1)
#endif
#ifndef __NR_wait4
#define __NR_wait4 (-1)
#endif
#ifndef __NR_waitid
#define __NR_waitid (-1)
#endif
#ifndef __NR_write
#define __NR_write (-1)
#endif
#ifndef __NR_writev
#define __NR_writev (-1)
#endif
#ifndef __NR_process_vm_readv
#define __NR_process_vm_readv (-1)
#endif
#ifndef __NR_process_vm_writev
#define __NR_process_vm_writev (-1)
#endif
#ifndef __NR_mount
#define __NR_mount (-1)
#endif
#ifndef __NR_umount2
#define __NR_umount2 (-1)
#endif
#ifndef __NR_pivot_root
#define __NR_pivot_root (-1)
#endif
#ifndef __NR_unshare
#define __NR_unshare (-1)
#endif
#ifndef __NR_setns
#define __NR_setns (-1)
#endif
#ifndef __NR_fsopen
#define __NR_fsopen (-1)
#endif
#ifndef __NR_fsconfig
#define __NR_fsconfig (-1)
#endif
#ifndef __NR_fsmount
#define __NR_fsmount (-1)
#endif
#ifndef __NR_fspick
#define __NR_fspick (-1)
#endif
#ifndef __NR_move_mount
#define __NR_move_mount (-1)
#endif
#ifndef __NR_open_tree
#define __NR_open_tree (-1)
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr (-1)
#endif
#ifndef __NR_name_to_handle_at
#define __NR_name_to_handle_at (-1)
#endif
#ifndef __NR_fanotify_init
#define __NR_fanotify_init (-1)
#endif
#ifndef __NR_quotactl
#define __NR_quotactl (-1)
#endif
#ifndef __NR_quotactl_fd
#define __NR_quotactl_fd (-1)
#endif
#ifndef __NR_lookup_dcookie
#define __NR_lookup_dcookie (-1)
#endif
#ifndef __NR_perf_event_open
#define __NR_perf_event_open (-1)
#endif
#ifndef __NR_bpf
#define __NR_bpf (-1)
#endif
#ifndef __NR_swapon
#define __NR_swapon (-1)
#endif
#ifndef __NR_swapoff
#define __NR_swapoff (-1)
#endif
#ifndef __NR_kcmp
#define __NR_kcmp (-1)
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd (-1)
#endif
#ifndef __NR_process_madvise
#define __NR_process_madvise (-1)
#endif
#ifndef __NR_get_mempolicy
#define __NR_get_mempolicy (-1)
#endif
#ifndef __NR_set_mempolicy
#define __NR_set_mempolicy (-1)
#endif
#ifndef __NR_mbind
#define __NR_mbind (-1)
#endif
#ifndef __NR_move_pages
#define __NR_move_pages (-1)
#endif
#ifndef __NR_migrate_pages
#define __NR_migrate_pages (-1)
#endif
#ifndef __NR_set_mempolicy_home_node
#define __NR_set_mempolicy_home_node (-1)
#endif
#ifndef __NR_settimeofday
#define __NR_settimeofday (-1)
#endif
#ifndef __NR_clock_settime
#define __NR_clock_settime (-1)
#endif
#ifndef __NR_clock_adjtime
#define __NR_clock_adjtime (-1)
#endif
#ifndef __NR_adjtimex
#define __NR_adjtimex (-1)
#endif
#ifndef __NR_stime
#define __NR_stime (-1)
#endif
#ifndef __NR_init_module
#define __NR_init_module (-1)
#endif
#ifndef __NR_finit_module
#define __NR_finit_module (-1)
#endif
#ifndef __NR_delete_module
#define __NR_delete_module (-1)
#endif
#ifndef __NR_reboot
#define __NR_reboot (-1)
#endif
#ifndef __NR_kexec_load
#define __NR_kexec_load (-1)
#endif
#ifndef __NR_kexec_file_load
#define __NR_kexec_file_load (-1)
#endif
#ifndef __NR_acct
#define __NR_acct (-1)
#endif
#ifndef __NR_iopl
#define __NR_iopl (-1)
#endif
#ifndef __NR_ioperm
#define __NR_ioperm (-1)
#endif
#ifndef __NR_syslog
#define __NR_syslog (-1)
#endif
#ifndef __NR_vhangup
#define __NR_vhangup (-1)
#endif
#ifndef __NR_open_by_handle_at
#define __NR_open_by_handle_at (-1)
#endif
#ifndef __NR_clone
#define __NR_clone (-1)
#endif
#ifndef __NR_clone3
#define __NR_clone3 (-1)
#endif
#ifndef __NR_personality
#define __NR_personality (-1)
#endif
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup (-1)
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter (-1)
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register (-1)
#endif
#ifndef __NR_keyctl
#define __NR_keyctl (-1)
#endif
#ifndef __NR_add_key
#define __NR_add_key (-1)
#endif
#ifndef __NR_request_key
#define __NR_request_key (-1)
#endif
#ifndef __NR_userfaultfd
#define __NR_userfaultfd (-1)
#endif
#ifndef __NR_uselib
#define __NR_uselib (-1)
#endif
#ifndef __NR_ustat
#define __NR_ustat (-1)
#endif
#ifndef __NR_sysfs
#define __NR_sysfs (-1)
#endif
#ifndef __NR__sysctl
#define __NR__sysctl (-1)
#endif
#ifndef __NR_nfsservctl
#define __NR_nfsservctl (-1)
#endif
#ifndef __NR_vm86
#define __NR_vm86 (-1)
#endif
#ifndef __NR_vm86old
#define __NR_vm86old (-1)
#endif
#ifndef __NR_create_module
#define __NR_create_module (-1)
#endif
#ifndef __NR_get_kernel_syms
#define __NR_get_kernel_syms (-1)
#endif
#ifndef __NR_query_module
#define __NR_query_module (-1)
#endif
#define SYSCALL_NAMES(X) \
    X(accept) X(accept4) X(access) X(alarm) X(arch_prctl) X(bind) X(brk) X(cachestat) X(capget) X(capset) \
    X(chdir) X(chmod) X(chown) X(chroot) X(clock_getres) X(clock_gettime) X(clock_nanosleep) X(close) \
    X(close_range) X(connect) X(copy_file_range) X(creat) X(dup) X(dup2) X(dup3) X(epoll_create) \
    X(epoll_create1) X(epoll_ctl) X(epoll_ctl_old) X(epoll_pwait) X(epoll_pwait2) X(epoll_wait) \
    X(epoll_wait_old) X(eventfd) X(eventfd2) X(execve) X(execveat) X(exit) X(exit_group) X(faccessat) \
    X(faccessat2) X(fadvise64) X(fallocate) X(fanotify_mark) X(fchdir) X(fchmod) X(fchmodat) X(fchmodat2) \
    X(fchown) X(fchownat) X(fcntl) X(fdatasync) X(fgetxattr) X(flistxattr) X(flock) X(fork) X(fremovexattr) \
    X(fsetxattr) X(fstat) X(fstatfs) X(fsync) X(ftruncate) X(futex) X(futex_requeue) X(futex_wait) \
    X(futex_waitv) X(futex_wake) X(futimesat) X(getcpu) X(getcwd) X(getdents) X(getdents64) X(getegid) \
    X(geteuid) X(getgid) X(getgroups) X(getitimer) X(getpeername) X(getpgid) X(getpgrp) X(getpid) X(getppid) \
    X(getpriority) X(getrandom) X(getresgid) X(getresuid) X(getrlimit) X(get_robust_list) X(getrusage) \
    X(getsid) X(getsockname) X(getsockopt) X(get_thread_area) X(gettid) X(gettimeofday) X(getuid) X(getxattr) \
    X(getxattrat) X(listxattrat) X(setxattrat) X(removexattrat) X(inotify_add_watch) X(inotify_init) \
    X(inotify_init1) X(inotify_rm_watch) X(io_cancel) X(ioctl) X(io_destroy) X(io_getevents) X(io_pgetevents) \
    X(ioprio_get) X(ioprio_set) X(io_setup) X(io_submit) X(kill) X(landlock_add_rule) \
    X(landlock_create_ruleset) X(landlock_restrict_self) X(lchown) X(lgetxattr) X(link) X(linkat) X(listen) \
    X(listxattr) X(llistxattr) X(lremovexattr) X(lseek) X(lsetxattr) X(lstat) X(lsm_get_self_attr) \
    X(lsm_list_modules) X(madvise) X(map_shadow_stack) X(membarrier) X(memfd_create) X(memfd_secret) \
    X(mincore) X(mkdir) X(mkdirat) X(mknod) X(mknodat) X(mlock) X(mlock2) X(mlockall) X(mmap) X(modify_ldt) \
    X(mprotect) X(mq_getsetattr) X(mq_notify) X(mq_open) X(mq_timedreceive) X(mq_timedsend) X(mq_unlink) \
    X(mremap) X(mseal) X(msgctl) X(msgget) X(msgrcv) X(msgsnd) X(msync) X(munlock) X(munlockall) X(munmap) \
    X(nanosleep) X(newfstatat) X(open) X(openat) X(openat2) X(pause) X(pidfd_open) X(pidfd_send_signal) \
    X(pipe) X(pipe2) X(pkey_alloc) X(pkey_free) X(pkey_mprotect) X(poll) X(ppoll) X(prctl) X(pread64) \
    X(preadv) X(preadv2) X(prlimit64) X(process_mrelease) X(pselect6) X(ptrace) X(pwrite64) X(pwritev) \
    X(pwritev2) X(read) X(readahead) X(readlink) X(readlinkat) X(readv) X(recvfrom) X(recvmmsg) X(recvmsg) \
    X(remap_file_pages) X(removexattr) X(rename) X(renameat) X(renameat2) X(restart_syscall) X(rmdir) X(rseq) \
    X(rt_sigaction) X(rt_sigpending) X(rt_sigprocmask) X(rt_sigqueueinfo) X(rt_sigreturn) X(rt_sigsuspend) \
    X(rt_sigtimedwait) X(rt_tgsigqueueinfo) X(sched_getaffinity) X(sched_getattr) X(sched_getparam) \
    X(sched_get_priority_max) X(sched_get_priority_min) X(sched_getscheduler) X(sched_rr_get_interval) \
    X(sched_setaffinity) X(sched_setattr) X(sched_setparam) X(sched_setscheduler) X(sched_yield) X(seccomp) \
    X(select) X(semctl) X(semget) X(semop) X(semtimedop) X(sendfile) X(sendmmsg) X(sendmsg) X(sendto) \
    X(setdomainname) X(setfsgid) X(setfsuid) X(setgid) X(setgroups) X(sethostname) X(setitimer) X(setpgid) \
    X(setpriority) X(setregid) X(setresgid) X(setresuid) X(setreuid) X(setrlimit) X(set_robust_list) X(setsid) \
    X(setsockopt) X(set_thread_area) X(set_tid_address) X(setuid) X(setxattr) X(shmat) X(shmctl) X(shmdt) \
    X(shmget) X(shutdown) X(sigaltstack) X(signalfd) X(signalfd4) X(socket) X(socketpair) X(splice) X(stat) \
    X(statfs) X(statx) X(symlink) X(symlinkat) X(sync) X(sync_file_range) X(syncfs) X(sysinfo) X(tee) \
    X(tgkill) X(time) X(timer_create) X(timer_delete) X(timer_getoverrun) X(timer_gettime) X(timer_settime) \
    X(timerfd_create) X(timerfd_gettime) X(timerfd_settime) X(times) X(tkill) X(truncate) X(umask) X(uname) \
    X(unlink) X(unlinkat) X(utime) X(utimensat) X(utimes) X(vfork) X(vmsplice) X(wait4) X(waitid) X(write) \
    X(writev) X(process_vm_readv) X(process_vm_writev) X(mount) X(umount2) X(pivot_root) X(unshare) X(setns) \
    X(fsopen) X(fsconfig) X(fsmount) X(fspick) X(move_mount) X(open_tree) X(mount_setattr) \
    X(name_to_handle_at) X(fanotify_init) X(quotactl) X(quotactl_fd) X(lookup_dcookie) X(perf_event_open) \
    X(bpf) X(swapon) X(swapoff) X(kcmp) X(pidfd_getfd) X(process_madvise) X(get_mempolicy) X(set_mempolicy) \
    X(mbind) X(move_pages) X(migrate_pages) X(set_mempolicy_home_node) X(settimeofday) X(clock_settime) \
    X(clock_adjtime) X(adjtimex) X(stime) X(init_module) X(finit_module) X(delete_module) X(reboot) \
    X(kexec_load) X(kexec_file_load) X(acct) X(iopl) X(ioperm) X(syslog) X(vhangup) X(open_by_handle_at) \
    X(clone) X(clone3) X(personality) X(io_uring_setup) X(io_uring_enter) X(io_uring_register) X(keyctl) \
    X(add_key) X(request_key) X(userfaultfd) X(uselib) X(ustat) X(sysfs) X(_sysctl) X(nfsservctl) X(vm86) \
    X(vm86old) X(create_module) X(get_kernel_syms) X(query_module)
static const int allow_always[] = {
    __NR_accept, __NR_accept4, __NR_access, __NR_alarm, __NR_arch_prctl, __NR_bind, __NR_brk, __NR_cachestat,
    __NR_capget, __NR_capset, __NR_chdir, __NR_chmod, __NR_chown, __NR_chroot, __NR_clock_getres,
    __NR_clock_gettime, __NR_clock_nanosleep, __NR_close, __NR_close_range, __NR_connect,
    __NR_copy_file_range, __NR_creat, __NR_dup, __NR_dup2, __NR_dup3, __NR_epoll_create, __NR_epoll_create1,
    __NR_epoll_ctl, __NR_epoll_ctl_old, __NR_epoll_pwait, __NR_epoll_pwait2, __NR_epoll_wait,
    __NR_epoll_wait_old, __NR_eventfd, __NR_eventfd2, __NR_execve, __NR_execveat, __NR_exit, __NR_exit_group,
    __NR_faccessat, __NR_faccessat2, __NR_fadvise64, __NR_fallocate, __NR_fanotify_mark, __NR_fchdir,
    __NR_fchmod, __NR_fchmodat, __NR_fchmodat2, __NR_fchown, __NR_fchownat, __NR_fcntl, __NR_fdatasync,
    __NR_fgetxattr, __NR_flistxattr, __NR_flock, __NR_fork, __NR_fremovexattr, __NR_fsetxattr, __NR_fstat,
    __NR_fstatfs, __NR_fsync, __NR_ftruncate, __NR_futex, __NR_futex_requeue, __NR_futex_wait,
    __NR_futex_waitv, __NR_futex_wake, __NR_futimesat, __NR_getcpu, __NR_getcwd, __NR_getdents,
    __NR_getdents64, __NR_getegid, __NR_geteuid, __NR_getgid, __NR_getgroups, __NR_getitimer,
    __NR_getpeername, __NR_getpgid, __NR_getpgrp, __NR_getpid, __NR_getppid, __NR_getpriority, __NR_getrandom,
    __NR_getresgid, __NR_getresuid, __NR_getrlimit, __NR_get_robust_list, __NR_getrusage, __NR_getsid,
    __NR_getsockname, __NR_getsockopt, __NR_get_thread_area, __NR_gettid, __NR_gettimeofday, __NR_getuid,
    __NR_getxattr, __NR_getxattrat, __NR_listxattrat, __NR_setxattrat, __NR_removexattrat,
    __NR_inotify_add_watch, __NR_inotify_init, __NR_inotify_init1, __NR_inotify_rm_watch, __NR_io_cancel,
    __NR_ioctl, __NR_io_destroy, __NR_io_getevents, __NR_io_pgetevents, __NR_ioprio_get, __NR_ioprio_set,
    __NR_io_setup, __NR_io_submit, __NR_kill, __NR_landlock_add_rule, __NR_landlock_create_ruleset,
    __NR_landlock_restrict_self, __NR_lchown, __NR_lgetxattr, __NR_link, __NR_linkat, __NR_listen,
    __NR_listxattr, __NR_llistxattr, __NR_lremovexattr, __NR_lseek, __NR_lsetxattr, __NR_lstat,
    __NR_lsm_get_self_attr, __NR_lsm_list_modules, __NR_madvise, __NR_map_shadow_stack, __NR_membarrier,
    __NR_memfd_create, __NR_memfd_secret, __NR_mincore, __NR_mkdir, __NR_mkdirat, __NR_mknod, __NR_mknodat,
    __NR_mlock, __NR_mlock2, __NR_mlockall, __NR_mmap, __NR_modify_ldt, __NR_mprotect, __NR_mq_getsetattr,
    __NR_mq_notify, __NR_mq_open, __NR_mq_timedreceive, __NR_mq_timedsend, __NR_mq_unlink, __NR_mremap,
    __NR_mseal, __NR_msgctl, __NR_msgget, __NR_msgrcv, __NR_msgsnd, __NR_msync, __NR_munlock, __NR_munlockall,
    __NR_munmap, __NR_nanosleep, __NR_newfstatat, __NR_open, __NR_openat, __NR_openat2, __NR_pause,
    __NR_pidfd_open, __NR_pidfd_send_signal, __NR_pipe, __NR_pipe2, __NR_pkey_alloc, __NR_pkey_free,
    __NR_pkey_mprotect, __NR_poll, __NR_ppoll, __NR_prctl, __NR_pread64, __NR_preadv, __NR_preadv2,
    __NR_prlimit64, __NR_process_mrelease, __NR_pselect6, __NR_ptrace, __NR_pwrite64, __NR_pwritev,
    __NR_pwritev2, __NR_read, __NR_readahead, __NR_readlink, __NR_readlinkat, __NR_readv, __NR_recvfrom,
    __NR_recvmmsg, __NR_recvmsg, __NR_remap_file_pages, __NR_removexattr, __NR_rename, __NR_renameat,
    __NR_renameat2, __NR_restart_syscall, __NR_rmdir, __NR_rseq, __NR_rt_sigaction, __NR_rt_sigpending,
    __NR_rt_sigprocmask, __NR_rt_sigqueueinfo, __NR_rt_sigreturn, __NR_rt_sigsuspend, __NR_rt_sigtimedwait,
    __NR_rt_tgsigqueueinfo, __NR_sched_getaffinity, __NR_sched_getattr, __NR_sched_getparam,
    __NR_sched_get_priority_max, __NR_sched_get_priority_min, __NR_sched_getscheduler,
    __NR_sched_rr_get_interval, __NR_sched_setaffinity, __NR_sched_setattr, __NR_sched_setparam,
    __NR_sched_setscheduler, __NR_sched_yield, __NR_seccomp, __NR_select, __NR_semctl, __NR_semget,
    __NR_semop, __NR_semtimedop, __NR_sendfile, __NR_sendmmsg, __NR_sendmsg, __NR_sendto, __NR_setdomainname,
    __NR_setfsgid, __NR_setfsuid, __NR_setgid, __NR_setgroups, __NR_sethostname, __NR_setitimer, __NR_setpgid,
    __NR_setpriority, __NR_setregid, __NR_setresgid, __NR_setresuid, __NR_setreuid, __NR_setrlimit,
    __NR_set_robust_list, __NR_setsid, __NR_setsockopt, __NR_set_thread_area, __NR_set_tid_address,
    __NR_setuid, __NR_setxattr, __NR_shmat, __NR_shmctl, __NR_shmdt, __NR_shmget, __NR_shutdown,
    __NR_sigaltstack, __NR_signalfd, __NR_signalfd4, __NR_socket, __NR_socketpair, __NR_splice, __NR_stat,
    __NR_statfs, __NR_statx, __NR_symlink, __NR_symlinkat, __NR_sync, __NR_sync_file_range, __NR_syncfs,
    __NR_sysinfo, __NR_tee, __NR_tgkill, __NR_time, __NR_timer_create, __NR_timer_delete,
    __NR_timer_getoverrun, __NR_timer_gettime, __NR_timer_settime, __NR_timerfd_create, __NR_timerfd_gettime,
    __NR_timerfd_settime, __NR_times, __NR_tkill, __NR_truncate, __NR_umask, __NR_uname, __NR_unlink,
    __NR_unlinkat, __NR_utime, __NR_utimensat, __NR_utimes, __NR_vfork, __NR_vmsplice, __NR_wait4,
    __NR_waitid, __NR_write, __NR_writev, __NR_process_vm_readv, __NR_process_vm_writev,
};
static const struct { int cap; int nr; } allow_with_cap[] = {
    {CAP_SYS_ADMIN, __NR_mount}, {CAP_SYS_ADMIN, __NR_umount2}, {CAP_SYS_ADMIN, __NR_pivot_root},
    {CAP_SYS_ADMIN, __NR_unshare}, {CAP_SYS_ADMIN, __NR_setns}, {CAP_SYS_ADMIN, __NR_fsopen},
    {CAP_SYS_ADMIN, __NR_fsconfig}, {CAP_SYS_ADMIN, __NR_fsmount}, {CAP_SYS_ADMIN, __NR_fspick},
    {CAP_SYS_ADMIN, __NR_move_mount}, {CAP_SYS_ADMIN, __NR_open_tree}, {CAP_SYS_ADMIN, __NR_mount_setattr},
    {CAP_SYS_ADMIN, __NR_name_to_handle_at}, {CAP_SYS_ADMIN, __NR_fanotify_init},
    {CAP_SYS_ADMIN, __NR_quotactl}, {CAP_SYS_ADMIN, __NR_quotactl_fd}, {CAP_SYS_ADMIN, __NR_lookup_dcookie},
    {CAP_SYS_ADMIN, __NR_perf_event_open}, {CAP_SYS_ADMIN, __NR_bpf}, {CAP_SYS_ADMIN, __NR_swapon},
    {CAP_SYS_ADMIN, __NR_swapoff},
    {CAP_SYS_PTRACE, __NR_kcmp}, {CAP_SYS_PTRACE, __NR_pidfd_getfd}, {CAP_SYS_PTRACE, __NR_process_madvise},
    {CAP_SYS_NICE, __NR_get_mempolicy}, {CAP_SYS_NICE, __NR_set_mempolicy}, {CAP_SYS_NICE, __NR_mbind},
    {CAP_SYS_NICE, __NR_move_pages}, {CAP_SYS_NICE, __NR_migrate_pages},
    {CAP_SYS_NICE, __NR_set_mempolicy_home_node},
    {CAP_SYS_TIME, __NR_settimeofday}, {CAP_SYS_TIME, __NR_clock_settime}, {CAP_SYS_TIME, __NR_clock_adjtime},
    {CAP_SYS_TIME, __NR_adjtimex}, {CAP_SYS_TIME, __NR_stime},
    {CAP_SYS_MODULE, __NR_init_module}, {CAP_SYS_MODULE, __NR_finit_module},
    {CAP_SYS_MODULE, __NR_delete_module},
    {CAP_SYS_BOOT, __NR_reboot}, {CAP_SYS_BOOT, __NR_kexec_load}, {CAP_SYS_BOOT, __NR_kexec_file_load},
    {CAP_SYS_PACCT, __NR_acct},
    {CAP_SYS_RAWIO, __NR_iopl}, {CAP_SYS_RAWIO, __NR_ioperm},
    {CAP_SYSLOG, __NR_syslog},
    {CAP_SYS_TTY_CONFIG, __NR_vhangup},
    {CAP_DAC_READ_SEARCH, __NR_open_by_handle_at},
};
/* ---- END GENERATED ---- */

/* Namespace flags of clone(2) (CLONE_NEWTIME is not among them: in clone's flags that bit is part of the
 * exit signal; only unshare and clone3 can ask for a time namespace). */
#define CLONE_NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                        CLONE_NEWPID | CLONE_NEWNET)
#define RET_ERRNO(e) (SECCOMP_RET_ERRNO | ((unsigned)(e) & SECCOMP_RET_DATA))
#define FILTER_MAX 4096

struct sc_rule { int nr; unsigned ret; };
static struct sock_filter filt[FILTER_MAX];
static unsigned short filt_len;

static void emit(struct sock_filter ins) {
    if (filt_len >= FILTER_MAX) die("seccomp: filter longer than %d instructions", FILTER_MAX);
    filt[filt_len++] = ins;
}

static int cmp_rule(const void *a, const void *b) {
    const struct sc_rule *x = a, *y = b;
    return x->nr < y->nr ? -1 : x->nr > y->nr;
}

/* rules[lo, hi): "nr == N -> return R"; anything else -> return dflt. Expects the syscall number in A. */
static void emit_tree(const struct sc_rule *r, int lo, int hi, unsigned dflt) {
    if (hi - lo <= 4) {
        for (int i = lo; i < hi; i++) {
            emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)r[i].nr, 0, 1));
            emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, r[i].ret));
        }
        emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, dflt));
        return;
    }
    int mid = lo + (hi - lo) / 2;
    /* nr >= r[mid] -> the "ja" below (to the upper half); else skip it into the lower half */
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (unsigned)r[mid].nr, 0, 1));
    unsigned short ja = filt_len;
    emit((struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0));
    emit_tree(r, lo, mid, dflt);
    filt[ja].k = (unsigned)(filt_len - ja - 1);
    emit_tree(r, mid, hi, dflt);
}

/* Sorts, drops unknown (-1) numbers and duplicates (the first rule for a number wins). Returns the count. */
static int normalize_rules(struct sc_rule *r, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].nr < 0) continue;
        int dup = 0;
        for (int j = 0; j < k && !dup; j++) dup = r[j].nr == r[i].nr;
        if (!dup) r[k++] = r[i];
    }
    qsort(r, (size_t)k, sizeof *r, cmp_rule);
    return k;
}

static void emit_prologue(void) {
#ifdef SHIM_AUDIT_ARCH
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SHIM_AUDIT_ARCH, 1, 0));
    emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    if (SHIM_DENY_X32) {
        emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, __X32_SYSCALL_BIT, 0, 1));
        emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
    }
#endif
}

/* The default profile for the capability set cap_mask. */
static void build_default_filter(void) {
    filt_len = 0;
    emit_prologue();
    int sys_admin = cap_in_set(CAP_SYS_ADMIN);
    /* clone3: ENOSYS, so libc uses clone, whose flags the filter can see */
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1));
    emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(ENOSYS)));
    if (!sys_admin) {
        /* clone: no namespace flags (the low 32 bits of args[0]; legacy clone ignores the upper half) */
        emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4));
        emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])));
        emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NS_FLAGS, 0, 1));
        emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
        emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    /* personality: PER_LINUX (0), PER_LINUX32 (0x8), UNAME26 (0x20000), both (0x20008), and 0xffffffff,
     * which only asks for the current persona */
    static const unsigned allowed_persona[] = {0x0u, 0x8u, 0x20000u, 0x20008u, 0xffffffffu};
    enum { NP = sizeof allowed_persona / sizeof allowed_persona[0] };
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0, 2 * NP + 2));
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])));
    for (int i = 0; i < NP; i++) {
        emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, allowed_persona[i], 0, 1));
        emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));

    enum { NA = sizeof allow_always / sizeof allow_always[0], NC = sizeof allow_with_cap / sizeof allow_with_cap[0] };
    static struct sc_rule rules[NA + NC + 1];
    int n = 0;
    for (int i = 0; i < NA; i++) rules[n++] = (struct sc_rule){allow_always[i], SECCOMP_RET_ALLOW};
    for (int i = 0; i < NC; i++)
        if (cap_in_set(allow_with_cap[i].cap)) rules[n++] = (struct sc_rule){allow_with_cap[i].nr, SECCOMP_RET_ALLOW};
    if (sys_admin) rules[n++] = (struct sc_rule){__NR_clone, SECCOMP_RET_ALLOW};
    n = normalize_rules(rules, n);
    emit_tree(rules, 0, n, RET_ERRNO(EPERM));
}

static int syscall_number(const char *name) {
#define X(n) if (strcmp(name, #n) == 0) return __NR_##n;
    SYSCALL_NAMES(X)
#undef X
    return -1;
}

static unsigned parse_action(const char *a, const char *errno_s, const char *where) {
    if (strcmp(a, "allow") == 0) return SECCOMP_RET_ALLOW;
    if (strcmp(a, "kill") == 0) return SECCOMP_RET_KILL_PROCESS;
    if (strcmp(a, "kill-thread") == 0) return SECCOMP_RET_KILL_THREAD;
    if (strcmp(a, "log") == 0) return SECCOMP_RET_LOG;
    if (strcmp(a, "errno") == 0) {
        char *end;
        long e = errno_s ? strtol(errno_s, &end, 10) : -1;
        if (!errno_s || *end || e < 0 || e > 4095) die("seccomp profile: bad errno in %s", where);
        return RET_ERRNO(e);
    }
    die("seccomp profile: unknown action %s in %s", a, where);
}

/* A profile compiled by Shoal (api/seccomp-profile.ts) from Docker's JSON format: a first line
 * "default ACTION [ERRNO]", then one line per syscall "NAME ACTION [ERRNO]". Names this architecture does
 * not have are skipped (as Docker does). clone3 keeps answering ENOSYS unless the profile names it. */
static void build_profile_filter(const char *path) {
    FILE *f = fopen(path, "re");
    if (!f) die("seccomp profile %s: %s", path, strerror(errno));
    static struct sc_rule rules[1024];
    int n = 0, lineno = 0, have_default = 0, named_clone3 = 0;
    unsigned dflt = RET_ERRNO(EPERM);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *save = NULL, *name = strtok_r(line, " \t\n", &save);
        if (!name || name[0] == '#') continue;
        char *act = strtok_r(NULL, " \t\n", &save), *eno = strtok_r(NULL, " \t\n", &save);
        char where[64];
        snprintf(where, sizeof where, "%s line %d", path, lineno);
        if (!act) die("seccomp profile: missing action at %s", where);
        if (strcmp(name, "default") == 0) { dflt = parse_action(act, eno, where); have_default = 1; continue; }
        if (n >= (int)(sizeof rules / sizeof rules[0])) die("seccomp profile: too many syscalls in %s", path);
        if (strcmp(name, "clone3") == 0) named_clone3 = 1;
        rules[n++] = (struct sc_rule){syscall_number(name), parse_action(act, eno, where)};
    }
    fclose(f);
    if (!have_default) die("seccomp profile %s: no default action", path);
    n = normalize_rules(rules, n);
    filt_len = 0;
    emit_prologue();
    if (!named_clone3 && __NR_clone3 >= 0) {
        emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1));
        emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(ENOSYS)));
    }
    emit_tree(rules, 0, n, dflt);
}

static void build_filter(void) {
#ifndef SHIM_AUDIT_ARCH
    die("seccomp: supported only on x86_64 and aarch64; run with --no-seccomp on this architecture");
#else
    if (seccomp_profile) build_profile_filter(seccomp_profile);
    else build_default_filter();
#endif
}

static void install_seccomp(void) {
    struct sock_fprog prog = {.len = filt_len, .filter = filt};
    if (filt_len == 0) child_fail("seccomp: no filter was built");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) child_fail("seccomp: %s", strerror(errno));
}

/* The container's filter, kept in its state directory for `exec` (which must apply the same one). */
static void save_filter(void) {
    char *p = path_in(state_dir, "seccomp.bpf");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, (const char *)filt, filt_len * sizeof filt[0]) < 0)
        fprintf(stderr, "shoal-shim: saving %s: %s\n", p, strerror(errno));
    if (fd >= 0) close(fd);
    free(p);
}

/* exec: the filter the container was started with; a container started by an older shim has none saved,
 * and gets the default. */
static void load_saved_filter(void) {
    char *p = path_in(state_dir, "seccomp.bpf");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0) { build_filter(); return; }
    ssize_t n = read(fd, filt, sizeof filt);
    close(fd);
    if (n <= 0 || n % (ssize_t)sizeof filt[0]) child_fail("seccomp: the container's saved filter is unreadable");
    filt_len = (unsigned short)(n / (ssize_t)sizeof filt[0]);
}

/* ---- device allowlist on cgroup v2: a BPF_CGROUP_DEVICE program ----
 * v1 has the devices controller (worker/engine/cgroups.ts writes devices.deny/devices.allow); v2 has only
 * this hook. The rules are the same as cgroups.ts DEFAULT_DEVICE_RULES (keep both in step). */
struct dev_rule { int type; long major, minor; int access; }; /* type: BPF_DEVCG_DEV_*, -1 any; -1 = any number */
#define ACC_M BPF_DEVCG_ACC_MKNOD
#define ACC_RWM (BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE)
static const struct dev_rule device_rules[] = {
    {BPF_DEVCG_DEV_CHAR, -1, -1, ACC_M}, {BPF_DEVCG_DEV_BLOCK, -1, -1, ACC_M},
    {BPF_DEVCG_DEV_CHAR, 1, 3, ACC_RWM}, {BPF_DEVCG_DEV_CHAR, 1, 5, ACC_RWM}, {BPF_DEVCG_DEV_CHAR, 1, 7, ACC_RWM},
    {BPF_DEVCG_DEV_CHAR, 1, 8, ACC_RWM}, {BPF_DEVCG_DEV_CHAR, 1, 9, ACC_RWM}, {BPF_DEVCG_DEV_CHAR, 5, 0, ACC_RWM},
    {BPF_DEVCG_DEV_CHAR, 5, 2, ACC_RWM}, {BPF_DEVCG_DEV_CHAR, 136, -1, ACC_RWM}, {BPF_DEVCG_DEV_CHAR, 10, 200, ACC_RWM},
};

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

/* r2 = access bits, r3 = device type, r4 = major, r5 = minor; per rule: a mismatch jumps to the next
 * rule, a match returns 1 (allowed); after the last rule, 0 (refused). Returns the instruction count. */
static int build_device_prog(struct bpf_insn *p) {
    int n = 0;
    p[n++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 2, 1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
    p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0);
    p[n++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 3, 0, 0, 0xffff);
    p[n++] = INSN(BPF_ALU64 | BPF_RSH | BPF_K, 2, 0, 0, 16);
    p[n++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 4, 1, offsetof(struct bpf_cgroup_dev_ctx, major), 0);
    p[n++] = INSN(BPF_LDX | BPF_W | BPF_MEM, 5, 1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
    for (size_t i = 0; i < sizeof device_rules / sizeof device_rules[0]; i++) {
        const struct dev_rule *r = &device_rules[i];
        int len = 5 + (r->type >= 0) + (r->major >= 0) + (r->minor >= 0); /* this rule's instructions */
        int left = len;
        /* each check: "if mismatch goto next rule" = skip the rest of this rule */
        if (r->type >= 0) { left--; p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 3, 0, (short)left, r->type); }
        if (r->major >= 0) { left--; p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 4, 0, (short)left, (int)r->major); }
        if (r->minor >= 0) { left--; p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, (short)left, (int)r->minor); }
        /* r0 = access & ~allowed; nonzero -> next rule */
        p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 0, 2, 0, 0);
        p[n++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 0, 0, 0, ~r->access);
        p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 0, 0, 2, 0);
        p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
        p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
    p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    return n;
}

/* Loads the program and attaches it to the cgroup2 directory; it stays attached while the cgroup exists.
 * Returns NULL or an error text. */
static const char *attach_device_prog(const char *dir, char *err, size_t errlen) {
    struct bpf_insn prog[256];
    int n = build_device_prog(prog);
    static char log[4096];
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = (uint32_t)n;
    a.license = (uint64_t)(uintptr_t)"GPL";
    int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
    if (pfd < 0) {
        /* again with the verifier's log, for the error message (a full log would fail with ENOSPC) */
        int e = errno;
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = sizeof log;
        a.log_level = 1;
        log[0] = 0;
        if (syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a) >= 0) log[0] = 0;
        snprintf(err, errlen, "device program: load: %s %.200s", strerror(e), log);
        return err;
    }
    int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfd < 0) { snprintf(err, errlen, "device program: open %s: %s", dir, strerror(errno)); close(pfd); return err; }
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)cfd;
    a.attach_bpf_fd = (uint32_t)pfd;
    a.attach_type = BPF_CGROUP_DEVICE;
    int r = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a), e = errno;
    close(cfd);
    close(pfd);
    if (r < 0) { snprintf(err, errlen, "device program: attach to %s: %s", dir, strerror(e)); return err; }
    return NULL;
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

/* The hardening every process started in the container gets (PID 1 and exec'd commands alike): resource
 * limits, capability bounding and ambient sets, user and groups, the container's capabilities (Docker's
 * default set unless --caps), no_new_privs (always: Docker's --security-opt no-new-privileges is Shoal's
 * only mode), and death with the parent. Seccomp comes separately, as the very last step before exec. */
static void harden(int last_cap) {
    struct rlimit rl = {1048576, 1048576};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        /* without CAP_SYS_RESOURCE we cannot raise the hard limit: use everything we are allowed */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0) child_fail("setrlimit nofile: %s", strerror(errno));
        }
    }
    /* --ulimit (exec: PID 1's limits), after the default above so nofile can be lowered or raised */
    for (int i = 0; i < n_ulimits; i++)
        if (setrlimit(ulimits[i].resource, &ulimits[i].rl) < 0)
            child_fail("setrlimit %d %llu:%llu: %s", ulimits[i].resource, (unsigned long long)ulimits[i].rl.rlim_cur,
                       (unsigned long long)ulimits[i].rl.rlim_max, strerror(errno));

    /* capabilities: shrink the bounding set while we still hold CAP_SETPCAP */
    for (int c = 0; c <= last_cap; c++)
        if (!cap_in_set(c) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
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

/* --init: PID 1 stays this small reaper; the command runs as its child. Every signal is forwarded to the
 * command, orphans re-parented to PID 1 are reaped, and PID 1 exits with the command's status. Signals
 * stay blocked and are taken with sigwaitinfo: a blocked signal reaches a namespace's PID 1 even from
 * outside (a handler-less one would be dropped). */
__attribute__((noreturn)) static void run_init(char **envp, const char *path_env) {
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t c = fork();
    if (c < 0) child_fail("init: fork: %s", strerror(errno));
    if (c == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        exec_cmd(envp, path_env);
    }
    /* the command's exec closes its copy of the error pipe; ours must go too, or the monitor waits */
    close(fail_fd);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0) continue;
        if (sig != SIGCHLD) { kill(c, sig); continue; }
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0)
            if (w == c) _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
}

/* --sysctl KEY=VALUE into /proc/sys of the container's own namespaces (Shoal's spec validation allows
 * only namespaced keys; the key is checked again here so it can only name a file under /proc/sys). */
static void apply_sysctls(void) {
    for (int i = 0; i < n_sysctls; i++) {
        const char *eq = strchr(sysctls[i], '=');
        char path[256];
        size_t kl = (size_t)(eq - sysctls[i]);
        if (kl == 0 || kl > 200) child_fail("sysctl %s: bad key", sysctls[i]);
        memcpy(path, "/proc/sys/", 10);
        for (size_t k = 0; k < kl; k++) {
            char ch = sysctls[i][k];
            if (!(ch == '.' || ch == '_' || ch == '-' || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z')))
                child_fail("sysctl %.*s: bad key", (int)kl, sysctls[i]);
            path[10 + k] = ch == '.' ? '/' : ch;
        }
        path[10 + kl] = 0;
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || write_all(fd, eq + 1, strlen(eq + 1)) < 0)
            child_fail("sysctl %.*s=%s: %s", (int)kl, sysctls[i], eq + 1, strerror(errno));
        close(fd);
    }
}

/* --read-only: the rootfs bind becomes read-only (mounts placed into it keep their own mode). */
static void make_root_readonly(void) {
    struct statvfs sv;
    unsigned long keep = 0;
    if (statvfs(rootfs, &sv) == 0) {
        if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
        if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
        if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME) keep |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME) keep |= MS_RELATIME;
    }
    xmount(NULL, rootfs, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL);
}

static int child_main(void *arg) {
    (void)arg;
    /* nothing in the container may ptrace or read the memory of this process before it execs */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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
    if (read_only_root) make_root_readonly();
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

    apply_sysctls(); /* before /proc/sys turns read-only below */
    /* the paths Docker hides: host hardware and kernel internals a container has no use for */
    static const char *masked[] = {
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
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
    /* last step before exec (needs no_new_privs, set above): from here on the filter applies (to the
     * --init reaper too) */
    if (seccomp_enabled) install_seccomp();
    if (init_mode) run_init(envp, path_env);
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
        "[--stop-signal SIG] [--no-seccomp | --seccomp-profile FILE] [--caps N,N,...|none] [--ulimit NAME=SOFT[:HARD]]... "
        "[--sysctl KEY=VALUE]... [--read-only] [--init] [--devices-bpf DIR] "
        "[--netns PATH | --net host] [--mount TYPE,SRC,DST[,OPT]...]... "
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

static const struct { const char *name; int res; } rlimit_names[] = {
    {"core", RLIMIT_CORE}, {"cpu", RLIMIT_CPU}, {"data", RLIMIT_DATA}, {"fsize", RLIMIT_FSIZE},
    {"locks", RLIMIT_LOCKS}, {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC}, {"rss", RLIMIT_RSS}, {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME}, {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK}, {"as", RLIMIT_AS},
};

static rlim_t parse_rlim(const char *s, const char *v) {
    if (strcmp(s, "-1") == 0 || strcmp(s, "unlimited") == 0) return RLIM_INFINITY;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || *end || s[0] == '-') die("--ulimit %s: bad value", v);
    return (rlim_t)n;
}

/* --ulimit NAME=SOFT[:HARD] as Docker spells it (nofile=1024:2048) */
static void parse_ulimit(const char *v) {
    if (n_ulimits >= MAX_LIST) die("too many --ulimit");
    const char *eq = strchr(v, '=');
    if (!eq) die("--ulimit needs NAME=SOFT[:HARD]: %s", v);
    int res = -1;
    for (size_t i = 0; i < sizeof rlimit_names / sizeof rlimit_names[0]; i++)
        if (strlen(rlimit_names[i].name) == (size_t)(eq - v) && strncmp(v, rlimit_names[i].name, (size_t)(eq - v)) == 0)
            res = rlimit_names[i].res;
    if (res < 0) die("--ulimit %s: unknown limit name", v);
    char soft[32], *colon;
    snprintf(soft, sizeof soft, "%s", eq + 1);
    colon = strchr(soft, ':');
    if (colon) *colon = 0;
    struct rlimit rl;
    rl.rlim_cur = parse_rlim(soft, v);
    rl.rlim_max = colon ? parse_rlim(colon + 1, v) : rl.rlim_cur;
    if (rl.rlim_cur > rl.rlim_max) die("--ulimit %s: soft limit above the hard one", v);
    ulimits[n_ulimits++] = (struct ulimit_spec){res, rl};
}

/* --caps 0,1,12 (capability numbers; Shoal resolves names) or none */
static void parse_caps(const char *v) {
    cap_mask = 0;
    caps_given = 1;
    if (strcmp(v, "none") == 0) return;
    for (const char *p = v; *p;) {
        char *end;
        long c = strtol(p, &end, 10);
        if (end == p || c < 0 || c > 63 || (*end && *end != ',')) die("--caps needs capability numbers (0..63) or none: %s", v);
        cap_mask |= 1ull << c;
        p = *end ? end + 1 : end;
    }
}

static void parse_args(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) { i++; break; }
        if (strcmp(a, "--no-seccomp") == 0) { seccomp_enabled = 0; continue; }
        if (!exec_mode && strcmp(a, "--read-only") == 0) { read_only_root = 1; continue; }
        if (!exec_mode && strcmp(a, "--init") == 0) { init_mode = 1; continue; }
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
        else if (strcmp(a, "--seccomp-profile") == 0) seccomp_profile = v;
        else if (strcmp(a, "--caps") == 0) parse_caps(v);
        else if (strcmp(a, "--ulimit") == 0) parse_ulimit(v);
        else if (strcmp(a, "--sysctl") == 0) { if (n_sysctls >= MAX_LIST) die("too many --sysctl"); if (!strchr(v, '=')) die("--sysctl needs KEY=VALUE: %s", v); sysctls[n_sysctls++] = v; }
        else if (strcmp(a, "--devices-bpf") == 0) devices_bpf_dir = v;
        else usage();
    }
    if (!state_dir || (!exec_mode && !rootfs) || i >= argc) usage();
    if (netns_path && net_host) die("--netns and --net host exclude each other");
    if (seccomp_profile && !seccomp_enabled) die("--seccomp-profile and --no-seccomp exclude each other");
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
    /* not ptraceable, and /proc/PID of this process not readable, by anything in the container before
     * the command's execve (which makes the process dumpable again) */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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
    /* ... its capabilities (PID 1's bounding set: what --caps gave the container) ... */
    {
        const char *cb = strstr(status, "\nCapBnd:");
        if (!cb) child_fail("container is not running (no CapBnd for PID 1)");
        cap_mask = strtoull(cb + 8, NULL, 16);
    }
    if (seccomp_enabled) load_saved_filter();
    /* ... and its resource limits (--ulimit) */
    n_ulimits = 0;
    for (size_t i = 0; i < sizeof rlimit_names / sizeof rlimit_names[0]; i++) {
        struct rlimit rl;
        if (prlimit(pid, rlimit_names[i].res, NULL, &rl) == 0) ulimits[n_ulimits++] = (struct ulimit_spec){rlimit_names[i].res, rl};
    }
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

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#define SELF_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* Closes every descriptor above 2 the shim inherited. The engine spawns the shim from its one sealed copy
 * as /proc/self/fd/3 (worker/engine/shim.ts), and whatever its own parent left open without close-on-exec
 * would otherwise pass through the shim to the container (seen: a pipe of the daemon's launcher in every
 * container). The shim itself needs none: it opens its state directory, netns and cgroups by path. */
static void close_inherited_fds(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
    DIR *d = opendir("/proc/self/fd"); /* before Linux 5.9 */
    if (!d) die("open /proc/self/fd: %s", strerror(errno));
    int fds[256], n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < (int)(sizeof fds / sizeof fds[0])) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (!*end && end != de->d_name && fd > 2 && fd != dirfd(d)) fds[n++] = (int)fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* The CVE-2019-5736 pattern: a process in the container (an exec'd command before its execve, or
 * `#!/proc/self/exe` in an image's script) can reach this binary through /proc/PID/exe and, as container
 * root, open it for writing. So the shim never runs from its file. The engine normally spawns it from the
 * one sealed memfd copy it made for the whole daemon: /proc/self/exe then already carries the seals and
 * there is nothing to do (main closes the inherited descriptor of the copy). Otherwise (started by hand,
 * or the engine could not make the copy) it copies itself into a sealed memfd (no write, grow or shrink,
 * seals fixed) and re-executes that copy, which /proc/PID/exe then names: about 2.5 ms more per start
 * (a 1 MB copy and a second exec of a static binary). */
static void run_from_sealed_copy(char **argv) {
    extern char **environ;
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (self < 0) die("open /proc/self/exe: %s", strerror(errno));
    int seals = fcntl(self, F_GET_SEALS);
    if (seals >= 0 && (seals & SELF_SEALS) == SELF_SEALS) { close(self); return; } /* already a sealed copy */
    int mfd = memfd_create("shoal-shim", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (mfd < 0 && errno == EINVAL) mfd = memfd_create("shoal-shim", MFD_CLOEXEC | MFD_ALLOW_SEALING); /* < 6.3 */
    if (mfd < 0) die("memfd_create: %s", strerror(errno));
    struct stat st;
    if (fstat(self, &st) < 0) die("fstat /proc/self/exe: %s", strerror(errno));
    for (off_t off = 0; off < st.st_size;) {
        ssize_t n = sendfile(mfd, self, &off, (size_t)(st.st_size - off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("copying the shim into a memfd: %s", n < 0 ? strerror(errno) : "short copy");
    }
    close(self);
    if (fcntl(mfd, F_ADD_SEALS, SELF_SEALS) < 0) die("sealing the shim's memfd: %s", strerror(errno));
    fexecve(mfd, argv, environ);
    die("fexecve of the sealed shim: %s", strerror(errno));
}

int main(int argc, char **argv) {
    run_from_sealed_copy(argv);
    close_inherited_fds();
    prctl(PR_SET_NAME, "shoal-shim", 0, 0, 0); /* an fexecve'd process is otherwise named after its fd */
    cap_mask = default_cap_mask();
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
    if (seccomp_enabled) build_filter(); /* a bad profile fails the start here; saved once the child runs */
    else { char *old = path_in(state_dir, "seccomp.bpf"); unlink(old); free(old); }
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
    if (devices_bpf_dir) {
        char err[512];
        if (attach_device_prog(devices_bpf_dir, err, sizeof err)) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            write_failed(err);
            return 1;
        }
    }
    if (write_all(sync_pipe[1], "g", 1) < 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); write_failed("sync pipe write failed"); return 1; }
    close(sync_pipe[1]);
    /* for `exec`, which must apply the container's filter; written while the child sets up (off the start's
     * critical path) and before state.json says running, which an exec requires */
    if (seccomp_enabled) save_filter();

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
