/* harness RUNS FILE PAUSE_MS [interleaved|grouped]: FILE has one launcher per line, "label<TAB>argv
 * words separated by spaces". Runs each RUNS times (after one warm-up round), taking turns round by
 * round (interleaved) or each launcher's runs back to back (grouped), PAUSE_MS apart; prints median,
 * p10, p90 and max RSS. The ratio column divides by the median of the line labelled $HARNESS_BASE
 * (default "crun run"). Shared by bench/container.sh and bench/oci.sh. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
#define MAXL 16
static char *labels[MAXL]; static char **argvs[MAXL]; static int n;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static int pause_ms = 50;
static double run(int i, long *rss, int *status) {
    usleep(pause_ms * 1000);
    posix_spawn_file_actions_t fa; posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    double t = now(); pid_t pid;
    if (posix_spawn(&pid, argvs[i][0], &fa, NULL, argvs[i], environ) != 0) { perror(argvs[i][0]); exit(1); }
    struct rusage ru; wait4(pid, status, 0, &ru);
    double elapsed = now() - t;
    posix_spawn_file_actions_destroy(&fa);
    if (ru.ru_maxrss > *rss) *rss = ru.ru_maxrss;
    return elapsed;
}
int main(int argc, char **argv) {
    int runs = atoi(argv[1]); FILE *f = fopen(argv[2], "r"); char line[4096];
    if (argc > 3) pause_ms = atoi(argv[3]);
    int grouped = argc > 4 && !strcmp(argv[4], "grouped");
    while (n < MAXL && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0; char *tab = strchr(line, '\t'); if (!tab) continue; *tab = 0;
        labels[n] = strdup(line); char **av = calloc(64, sizeof *av); int k = 0;
        for (char *w = strtok(tab + 1, " "); w && k < 63; w = strtok(NULL, " ")) av[k++] = strdup(w);
        argvs[n++] = av;
    }
    double *times[MAXL]; long rss[MAXL] = {0}; int failures[MAXL] = {0};
    for (int i = 0; i < n; i++) { times[i] = calloc(runs, sizeof(double)); int s; long r = 0; run(i, &r, &s); }
    if (grouped) {
        for (int i = 0; i < n; i++) for (int r = 0; r < runs; r++) {
            int s; times[i][r] = run(i, &rss[i], &s); if (s != 0) failures[i]++;
        }
    } else {
        for (int r = 0; r < runs; r++) for (int i = 0; i < n; i++) {
            int s; times[i][r] = run(i, &rss[i], &s); if (s != 0) failures[i]++;
        }
    }
    double base = 0;
    const char *base_label = getenv("HARNESS_BASE") ? getenv("HARNESS_BASE") : "crun run"; /* the "x crun" column's 1.00 */
    for (int i = 0; i < n; i++) { qsort(times[i], runs, sizeof(double), cmp); if (!strcmp(labels[i], base_label)) base = times[i][runs / 2]; }
    printf("%-30s %9s %9s %9s %8s %10s %s\n", "launcher", "median", "p10", "p90", "x crun", "max RSS", "failed");
    for (int i = 0; i < n; i++) {
        double m = times[i][runs / 2];
        printf("%-30s %6.2f ms %6.2f ms %6.2f ms %7.2fx %7.1f MiB %d\n", labels[i], m, times[i][runs / 10],
               times[i][runs * 9 / 10], base > 0 ? m / base : 0, rss[i] / 1024.0, failures[i]);
    }
    return 0;
}
