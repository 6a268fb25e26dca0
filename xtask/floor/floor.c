/* The start-up floor of `nono run` (see xtask/src/bench_floor.rs): a launcher that does only
 * the kernel work nono's sandbox needs, replayed from one traced `nono run`. The same Landlock
 * ruleset (each rule opened O_PATH and added), the same seccomp programs, a new session,
 * PR_SET_PDEATHSIG and no_new_privs in a vfork child, then execve of argv[1..] and a wait.
 * Nothing else: no policy, no argument parsing, no audit trail, no supervision. What `nono run`
 * adds beyond this is nono's own cost; what this adds over running the command directly is
 * the cost of the profile's kernel work, which no launcher can avoid.
 *
 * floor_plan.h, written by the benchmark, defines HANDLED_FS, HANDLED_NET, SCOPED,
 * RULESET_ATTR_SIZE, RESTRICT_FLAGS, RULES[] and PROGS[]. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct ruleset_attr {
    unsigned long long handled_access_fs, handled_access_net, scoped;
};
struct path_beneath_attr {
    unsigned long long allowed_access;
    int parent_fd;
} __attribute__((packed));
struct rule {
    unsigned long long access;
    const char *path;
};
struct prog {
    unsigned int flags;
    unsigned short len;
    struct sock_filter *filter;
};

#include "floor_plan.h"

#define N_RULES (sizeof RULES / sizeof RULES[0])
#define N_PROGS (sizeof PROGS / sizeof PROGS[0])

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 2)
        return 125;
    struct ruleset_attr attr = {HANDLED_FS, HANDLED_NET, SCOPED};
    int ruleset = syscall(SYS_landlock_create_ruleset, &attr, RULESET_ATTR_SIZE, 0);
    if (ruleset < 0)
        return 125;
    static int fds[N_RULES];
    for (size_t i = 0; i < N_RULES; i++) {
        fds[i] = open(RULES[i].path, O_PATH | O_CLOEXEC);
        if (fds[i] < 0)
            return 125;
        struct path_beneath_attr rule = {RULES[i].access, fds[i]};
        if (syscall(SYS_landlock_add_rule, ruleset, 1 /* PATH_BENEATH */, &rule, 0))
            return 125;
    }
    static struct sock_fprog progs[N_PROGS];
    for (size_t i = 0; i < N_PROGS; i++)
        progs[i] = (struct sock_fprog){PROGS[i].len, PROGS[i].filter};
    pid_t pid = vfork();
    if (pid == 0) {
        setsid();
        prctl(PR_SET_PDEATHSIG, 9);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            _exit(125);
        if (syscall(SYS_landlock_restrict_self, ruleset, RESTRICT_FLAGS))
            _exit(125);
        for (size_t i = 0; i < N_PROGS; i++)
            if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, PROGS[i].flags, &progs[i]))
                _exit(125);
        execve(argv[1], argv + 1, environ);
        _exit(127);
    }
    if (pid < 0)
        return 125;
    for (size_t i = 0; i < N_RULES; i++)
        close(fds[i]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
