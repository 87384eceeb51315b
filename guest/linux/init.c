/*
 * init.c: /init of Swiftlet's minimal Linux guest (PID 1 of the initramfs that guest/linux/build.sh packs).
 *
 * A small C program without a C library (built with the kernel source's own tools/include/nolibc), because
 * on kvm_pvm every system call costs ~0.6 ms and every fork+exec of busybox ~1.5 s: a shell-script init
 * spent ~7 s before its first marker. This one makes a few dozen system calls and one fork.
 *
 * What it does, in order:
 *   1. mounts /proc, /sys and devtmpfs on /dev; sets the hostname from /etc/hostname;
 *   2. loads the kernel modules listed in /etc/swiftlet/modules (one path per line, in order; the
 *      initramfs guest/debian/fetch.sh builds for Debian's stock kernel lists virtio_pci and
 *      virtio_console) and, when the kernel was told console=hvc0 and /dev/hvc0 appeared, moves its
 *      standard streams there;
 *   3. prints "swiftlet-init: started, N arguments from the kernel" (words the kernel passed to init: 0
 *      unless the command line has "--" or parameters the kernel does not know), "swiftlet-init: uptime
 *      U I" and "swiftlet-init: nproc=N memtotal=M kB", and writes byte 3 to the lab marker port 0x440
 *      ("init reached");
 *   4. runs the command: the NUL-separated words of /swiftlet/argv (the VMM appends that file to the
 *      initramfs as a second cpio archive, so every argument arrives exactly as given, spaces and quotes
 *      kept), or else init's own arguments (the words after "--" on the kernel command line, as under
 *      QEMU), or else an interactive login shell. /swiftlet/env adds NAME=VALUE lines (NUL-separated) to
 *      the environment (the VMM passes the host's TERM there). The command runs in its own session with the
 *      console as its controlling terminal (what busybox's cttyhack does), searched in PATH; right before
 *      execve it writes byte 4 to the marker port ("command starts");
 *   5. reaps every child until the command ends; its status is the exit code, 128 + N when signal N
 *      killed it, 127 when it was not found and 126 when it could not be executed;
 *   6. prints "swiftlet-init: exit status S", waits until the console has sent everything (TCSBRK), writes S
 *      to the debug-exit port 0xf4 (Swiftlet ends the VM with status S for a Linux guest; QEMU's
 *      isa-debug-exit gives (S << 1) | 1), and then reboots (reboot=k / reboot=t end the VM where no
 *      debug-exit device exists).
 * Snapshot mode (the kernel command line has swiftlet.snapshot: `swiftlet boot --snapshot FILE` put it there):
 * in step 4 the child that will run the command first takes the console, switches it to raw mode, prints
 * "swiftlet-init: ready for a command" and writes byte 7 to the marker port: the VMM snapshots the VM right
 * there. A restore of that snapshot (`swiftlet restore FILE -- COMMAND`) types the command on the console as
 * "N:" and N bytes of NUL-ended words; the child reads it, puts the terminal back and runs it (no words: a
 * shell). So everything up to here is paid once, at snapshot time.
 * Signals (the kernel command line has swiftlet.signals: `swiftlet boot --forward-signals`, which swiftlet-vm
 * uses): while the command runs, init looks every 100 ms at the VMM's signal mailbox (lab port 0x443, a read
 * takes what is there) and sends the command the signal it finds: how `swiftlet-vm kill` reaches a process in
 * the VM. A poll is three system calls; without the parameter init just blocks in waitpid.
 * Ports are written through /dev/port (the file offset is the port number); kernels without /dev/port
 * (Debian's: DEVPORT off) reach the same two lab devices through their MMIO twins, which Swiftlet maps at
 * 0x3ffff000 (marker) and 0x3ffff010 (debug-exit) when RAM ends below them, through /dev/mem.
 */
#include "nolibc.h"

#define PATH_SEARCH "/bin:/sbin:/usr/bin:/usr/sbin"
#define MAX_ARGS 4096
#define MAX_ENV 64

#ifndef TIOCSCTTY
#define TIOCSCTTY 0x540E
#endif
#ifndef TCSBRK
#define TCSBRK 0x5409
#endif
#ifndef __NR_finit_module
#define __NR_finit_module 313
#endif
#ifndef __NR_sethostname
#define __NR_sethostname 170
#endif
#ifndef __NR_sched_getaffinity
#define __NR_sched_getaffinity 204
#endif
#ifndef O_SYNC
#define O_SYNC 04010000
#endif

/* What nolibc (Linux 6.1) lacks. */
static size_t span_until(const char *s, const char *reject)
{
	size_t n = 0;
	while (s[n] && !strchr(reject, s[n]))
		n++;
	return n;
}

static char *find(const char *haystack, const char *needle)
{
	size_t len = strlen(needle);
	for (; *haystack; haystack++)
		if (!strncmp(haystack, needle, len))
			return (char *)haystack;
	return 0;
}

static void append(char *dst, const char *src, size_t size)
{
	size_t n = strlen(dst);
	while (*src && n + 1 < size)
		dst[n++] = *src++;
	dst[n] = 0;
}

static void say(const char *a, const char *b, const char *c)
{
	char line[512];
	size_t n = 0;
	const char *parts[4] = { "swiftlet-init: ", a, b, c };
	for (int i = 0; i < 4; i++) {
		for (const char *p = parts[i]; p && *p && n < sizeof(line) - 2; p++)
			line[n++] = *p;
	}
	line[n++] = '\n';
	write(1, line, n); /* one write: a kernel message cannot split the line */
}

/* Reads up to size - 1 bytes of a small file; returns the length, -1 when it cannot be opened. */
static long slurp(const char *path, char *buffer, long size)
{
	int fd = open(path, O_RDONLY, 0);
	long total = 0, n;
	if (fd < 0)
		return -1;
	while (total < size - 1 && (n = read(fd, buffer + total, size - 1 - total)) > 0)
		total += n;
	close(fd);
	buffer[total] = 0;
	return total;
}

/* One byte to an I/O port: /dev/port, or the MMIO twin of the two lab ports through /dev/mem. */
static void outb(unsigned port, unsigned char value)
{
	int fd = open("/dev/port", O_WRONLY, 0);
	if (fd >= 0) {
		if (lseek(fd, port, SEEK_SET) == (off_t)port)
			write(fd, &value, 1);
		close(fd);
		return;
	}
	unsigned long offset = port == 0x440 ? 0x0 : port == 0xf4 ? 0x10 : 0x1000;
	if (offset == 0x1000)
		return;
	fd = open("/dev/mem", O_RDWR | O_SYNC, 0);
	if (fd < 0)
		return;
	volatile unsigned int *page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0x3ffff000);
	if (page != MAP_FAILED) {
		page[offset / 4] = value;
		munmap((void *)page, 4096);
	}
	close(fd);
}

/* The signal the VMM left in its mailbox (lab port 0x443; reading takes it), 0 when none. */
static int take_signal(int port_fd)
{
	unsigned char value = 0;
	if (lseek(port_fd, 0x443, SEEK_SET) != 0x443 || read(port_fd, &value, 1) != 1)
		return 0;
	return value;
}

static int online_cpus(void)
{
	unsigned long mask[16] = { 0 };
	long n = my_syscall3(__NR_sched_getaffinity, 0, sizeof(mask), mask);
	int count = 0;
	for (long i = 0; i < n / (long)sizeof(long); i++)
		for (unsigned long w = mask[i]; w; w &= w - 1)
			count++;
	return count;
}

static void load_modules(void)
{
	static char list[8192];
	if (slurp("/etc/swiftlet/modules", list, sizeof(list)) <= 0)
		return;
	for (char *line = list, *end; *line; line = end) {
		end = strchr(line, '\n');
		if (end)
			*end++ = 0;
		else
			end = line + strlen(line);
		if (!*line)
			continue;
		int fd = open(line, O_RDONLY, 0);
		if (fd < 0 || my_syscall3(__NR_finit_module, fd, "", 0) < 0)
			say("cannot load ", line, "");
		if (fd >= 0)
			close(fd);
	}
	static char cmdline[4096];
	if (slurp("/proc/cmdline", cmdline, sizeof(cmdline)) < 0 || !find(cmdline, "console=hvc0"))
		return;
	for (int i = 0; i < 20; i++) {
		int fd = open("/dev/hvc0", O_RDWR, 0);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
			return;
		}
		usleep(100000);
	}
}

/* NUL-separated words of a file into list (at most max - 1, NULL-terminated); the count, or -1. */
static int split_file(const char *path, char *buffer, long size, char **list, int max)
{
	long n = slurp(path, buffer, size);
	int count = 0;
	if (n < 0)
		return -1;
	for (long i = 0; i < n && count < max - 1; ) {
		list[count++] = buffer + i;
		while (i < n && buffer[i])
			i++;
		i++;
	}
	list[count] = 0;
	return count;
}

/* The console the kernel writes to (ttyS0, hvc0...), as the controlling terminal of a new session. */
static void take_console(void)
{
	static int taken; /* snapshot mode takes it before the snapshot point: once is enough */
	char active[256], path[300] = "/dev/";
	if (taken++)
		return;
	setsid();
	if (slurp("/sys/class/tty/console/active", active, sizeof(active)) <= 0)
		return;
	char *name = strrchr(active, ' ');
	name = name ? name + 1 : active;
	name[span_until(name, "\n")] = 0;
	append(path, name, sizeof(path));
	int fd = open(path, O_RDWR, 0);
	if (fd < 0)
		return;
	ioctl(fd, TIOCSCTTY, 0);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/* The kernel's struct termios (asm-generic/termbits.h), for TCGETS/TCSETS: nolibc has no termios. */
struct kernel_termios {
	unsigned int c_iflag, c_oflag, c_cflag, c_lflag;
	unsigned char c_line, c_cc[19];
};
#define K_TCGETS 0x5401
#define K_TCSETS 0x5402

/* Snapshot mode: marks the snapshot point (byte 7; 5 and 6 are compare's probe script's), then reads "N:"
 * and N bytes of NUL-ended words from the console in raw mode; returns the word count (0: none, run a shell). */
static int receive_command(char *buffer, long size, char **list, int max)
{
	struct kernel_termios saved, raw;
	int have = ioctl(0, K_TCGETS, &saved) == 0;
	if (have) {
		raw = saved;
		raw.c_iflag &= ~0x7e0u;           /* ISTRIP INLCR IGNCR ICRNL IUCLC IXON */
		raw.c_lflag &= ~0x800bu;          /* ISIG ICANON ECHO IEXTEN */
		raw.c_cc[6] = 1;                  /* VMIN */
		raw.c_cc[5] = 0;                  /* VTIME */
		ioctl(0, K_TCSETS, &raw);
	}
	say("ready for a command (snapshot point)", "", "");
	ioctl(1, TCSBRK, (void *)1);
	outb(0x440, 7);
	long length = 0, got = 0, n;
	char c;
	while (read(0, &c, 1) == 1 && c != ':')
		if (c >= '0' && c <= '9' && length < size)
			length = length * 10 + (c - '0');
	if (length > size - 1)
		length = size - 1;
	while (got < length && (n = read(0, buffer + got, length - got)) > 0)
		got += n;
	if (have)
		ioctl(0, K_TCSETS, &saved);
	int count = 0;
	for (long i = 0; i < got && count < max - 1; ) {
		list[count++] = buffer + i;
		while (i < got && buffer[i])
			i++;
		i++;
	}
	list[count] = 0;
	return count;
}

static void exec_command(char **argv, char **envp)
{
	char path[512];
	int status = 127;
	take_console();
	outb(0x440, 4);
	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		status = errno == ENOENT ? 127 : 126;
	} else {
		for (const char *dir = PATH_SEARCH; *dir; ) {
			size_t len = span_until(dir, ":");
			if (len + strlen(argv[0]) + 2 < sizeof(path)) {
				memcpy(path, dir, len);
				path[len] = '/';
				strcpy(path + len + 1, argv[0]);
				execve(path, argv, envp);
				if (errno != ENOENT)
					status = 126;
			}
			dir += len;
			if (*dir == ':')
				dir++;
		}
	}
	char message[600] = "swiftlet-init: ";
	append(message, argv[0], 400);
	append(message, status == 127 ? ": not found\n" : ": cannot execute\n", sizeof(message));
	write(2, message, strlen(message));
	exit(status);
}

int main(int argc, char **argv)
{
	static char argv_buffer[65536], env_buffer[8192], text[4096];
	static char *command[MAX_ARGS], *envp[MAX_ENV + 4];
	char number[24];

	mount("proc", "/proc", "proc", 0, 0);
	mount("sysfs", "/sys", "sysfs", 0, 0);
	mount("devtmpfs", "/dev", "devtmpfs", 0, 0);
	long n = slurp("/etc/hostname", text, 256);
	if (n > 0) {
		size_t len = span_until(text, "\n");
		text[len] = 0;
		/* No function call in my_syscall*()'s arguments: it would clobber the register variables. */
		my_syscall2(__NR_sethostname, text, len);
	}
	load_modules();

	char arguments[48] = ", ";
	append(arguments, itoa(argc - 1), sizeof(arguments));
	append(arguments, " arguments from the kernel", sizeof(arguments));
	say("started", arguments, "");
	if (slurp("/proc/uptime", text, sizeof(text)) > 0) {
		text[span_until(text, "\n")] = 0;
		say("uptime ", text, "");
	}
	outb(0x440, 3);

	char memtotal[32] = "?";
	if (slurp("/proc/meminfo", text, sizeof(text)) > 0) {
		char *p = find(text, "MemTotal:");
		if (p) {
			p += 9;
			while (*p == ' ')
				p++;
			size_t len = span_until(p, " ");
			if (len < sizeof(memtotal)) {
				memcpy(memtotal, p, len);
				memtotal[len] = 0;
			}
		}
	}
	char nproc_text[64] = "nproc=";
	append(nproc_text, itoa(online_cpus()), sizeof(nproc_text));
	append(nproc_text, " memtotal=", sizeof(nproc_text));
	say(nproc_text, memtotal, " kB");

	int envc = 0;
	envp[envc++] = "PATH=" PATH_SEARCH;
	envp[envc++] = "HOME=/root";
	char *extra[MAX_ENV];
	int extras = split_file("/swiftlet/env", env_buffer, sizeof(env_buffer), extra, MAX_ENV);
	for (int i = 0; i < extras; i++)
		if (strchr(extra[i], '='))
			envp[envc++] = extra[i];
	envp[envc] = 0;

	static char *shell[] = { "/bin/sh", "-l", 0 };
	char **args = shell;
	if (split_file("/swiftlet/argv", argv_buffer, sizeof(argv_buffer), command, MAX_ARGS) > 0)
		args = command;
	else if (argc > 1)
		args = argv + 1;

	static char cmdline[4096];
	int snapshot = slurp("/proc/cmdline", cmdline, sizeof(cmdline)) > 0 && find(cmdline, "swiftlet.snapshot");

	int status = 0;
	pid_t child = fork();
	if (child == 0 && snapshot) {
		take_console();
		if (receive_command(argv_buffer, sizeof(argv_buffer), command, MAX_ARGS) > 0)
			args = command;
		else
			args = shell;
	}
	if (child == 0)
		exec_command(args, envp);
	if (child < 0) {
		say("cannot fork", "", "");
		status = 126;
	}
	int mailbox = child > 0 && find(cmdline, "swiftlet.signals") ? open("/dev/port", O_RDONLY, 0) : -1;
	while (child > 0) {
		int wstatus = 0;
		pid_t pid = waitpid(-1, &wstatus, mailbox >= 0 ? WNOHANG : 0);
		if (pid == 0) {
			int signal = take_signal(mailbox);
			if (signal)
				kill(child, signal);
			else
				usleep(100000);
			continue;
		}
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			break;
		if (pid != child)
			continue;
		status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + (wstatus & 0x7f);
		break;
	}

	utoa_r(status, number);
	say("exit status ", number, "");
	ioctl(1, TCSBRK, (void *)1); /* tcdrain: the console has sent every byte */
	outb(0xf4, status);
	reboot(LINUX_REBOOT_CMD_RESTART);
	for (;;)
		sleep(3600);
}
