/*
 * chdb-serve: runs ClickHouse's clickhouse-local from chDB's libchdb.so as a server.
 *
 * Usage: chdb-serve LIBCHDB STATE_DIR TCP_PORT HTTP_PORT [clickhouse-local options...]
 *        chdb-serve LIBCHDB --local [clickhouse-local options...]
 *
 * The second form runs one clickhouse-local command and prints its answer: a client of the
 * same release as the server (sink/bench_test.go loads a file through it).
 *
 * libchdb.so holds a current ClickHouse engine with clickhouse-local inside. Given a data
 * path and ports, clickhouse-local opens the native and HTTP listeners on SYSTEM START LISTEN
 * and serves them for as long as its command runs; the command here is one statement that
 * sleeps until it is killed. SIGTERM and SIGINT kill that statement through the HTTP port,
 * so clickhouse-local returns and shuts its tables down as it does at the end of any command;
 * a second signal, or a kill that does not end the statement within 30 s, exits at once.
 *
 * The native port is the launcher's own: it relays each connection to clickhouse-local's native
 * listener on a private port, and when a client's connection ends, however it ends, the relay
 * closes its side towards clickhouse-local in order (FIN). clickhouse-local must never see a
 * reset: its connection thread lets the "Connection reset by peer" of a client that resets
 * while the server waits for its next packet (a killed process with unread data, a closed
 * socket with SO_LINGER 0) escape to Poco's error handler, which in clickhouse-local, unlike
 * clickhouse-server, calls std::terminate: the whole engine would abort (exit 134). An orderly
 * close is the end of a session it handles. The HTTP port is clickhouse-local's own.
 *
 * The library is opened with dlopen: chDB ships no header, and the launcher then needs only
 * a C compiler to build (deploy/clickhouse/clickhouse.sh builds it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The statement that keeps clickhouse-local serving; the stop kills it by this text. */
#define SERVE_MARK "chdb_serve_keepalive"
#define SERVE_QUERY                                                                         \
	"SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "                                     \
	"SELECT sleepEachRow(1) AS " SERVE_MARK " FROM numbers(1000000000000) FORMAT Null "      \
	"SETTINGS function_sleep_max_microseconds_per_block = 0, max_block_size = 1"

typedef void *(*query_cmdline_fn)(int, char **);
typedef const char *(*result_error_fn)(void *);
typedef char *(*result_buffer_fn)(void *);
typedef size_t (*result_length_fn)(void *);

static int http_port;
static volatile sig_atomic_t stopping;

/* kill_serving_statement asks the server, over its own HTTP port, to kill the statement that
 * keeps it serving. It returns 0 when the server took the request. */
static int kill_serving_statement(void)
{
	static const char body[] = "KILL QUERY WHERE query LIKE '%sleepEachRow(1) AS " SERVE_MARK
				   "%' AND query_id != queryID() ASYNC";
	char req[512];
	int n = snprintf(req, sizeof req,
			 "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n%s",
			 sizeof body - 1, body);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && write(fd, req, (size_t)n) == n) {
		char status[16] = {0}, drain[4096];
		if (read(fd, status, sizeof status - 1) > 0 && strncmp(status, "HTTP/1.", 7) == 0 &&
		    strncmp(status + 8, " 200", 4) == 0)
			rc = 0;
		/* The whole answer is read: a connection closed early makes the server log an error. */
		while (read(fd, drain, sizeof drain) > 0)
			;
	}
	close(fd);
	return rc;
}

/* signal_waiter is the only thread that takes SIGTERM and SIGINT: every other thread,
 * ClickHouse's included, inherits a mask that blocks them. */
static void *signal_waiter(void *arg)
{
	sigset_t *set = arg;
	for (;;) {
		int sig;
		if (sigwait(set, &sig) != 0)
			continue;
		if (stopping) {
			fprintf(stderr, "chdb-serve: second signal %d, exiting at once\n", sig);
			_exit(1);
		}
		stopping = 1;
		fprintf(stderr, "chdb-serve: signal %d, stopping\n", sig);
		int tries;
		for (tries = 0; tries < 10 && kill_serving_statement() != 0; tries++)
			sleep(1);
		for (tries = 0; tries < 30; tries++)
			sleep(1);
		fprintf(stderr, "chdb-serve: clickhouse-local did not return within 30 s, exiting\n");
		_exit(1);
	}
	return NULL;
}

/* A relayed connection: the client's socket and the one to clickhouse-local. The second of
 * its two pumps to finish closes both. */
struct relay {
	int client, engine;
	pthread_mutex_t mu;
	int done;
};

static int engine_port;

static void relay_finish(struct relay *r)
{
	pthread_mutex_lock(&r->mu);
	int last = ++r->done == 2;
	pthread_mutex_unlock(&r->mu);
	if (last) {
		close(r->client);
		close(r->engine);
		pthread_mutex_destroy(&r->mu);
		free(r);
	}
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* client_to_engine copies what the client sends; at its end (EOF, reset or any error) it
 * closes the way to clickhouse-local in order, which then ends the session itself. */
static void *client_to_engine(void *arg)
{
	struct relay *r = arg;
	char buf[65536];
	for (;;) {
		ssize_t n = read(r->client, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write_all(r->engine, buf, (size_t)n) != 0)
			break;
	}
	shutdown(r->engine, SHUT_WR);
	relay_finish(r);
	return NULL;
}

/* engine_to_client copies clickhouse-local's answers; once the client cannot take them it
 * reads on and drops them, so that clickhouse-local never blocks on a gone client. When
 * clickhouse-local ends the session, the client's side ends too. */
static void *engine_to_client(void *arg)
{
	struct relay *r = arg;
	char buf[65536];
	int client_gone = 0;
	for (;;) {
		ssize_t n = read(r->engine, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (!client_gone && write_all(r->client, buf, (size_t)n) != 0)
			client_gone = 1;
	}
	shutdown(r->client, SHUT_RDWR); /* also wakes client_to_engine's read */
	relay_finish(r);
	return NULL;
}

static void *accept_loop(void *arg)
{
	int ln = *(int *)arg;
	for (;;) {
		int c = accept(ln, NULL, NULL);
		if (c < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				sleep(1); /* out of descriptors, say: let the sessions end */
			continue;
		}
		int e = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)engine_port)};
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (e < 0 || connect(e, (struct sockaddr *)&addr, sizeof addr) != 0) {
			/* clickhouse-local is not listening yet (or any more): the client sees a closed
			 * connection and tries again. */
			if (e >= 0)
				close(e);
			close(c);
			continue;
		}
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(e, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct relay *r = calloc(1, sizeof *r);
		if (r == NULL) {
			close(c);
			close(e);
			continue;
		}
		r->client = c;
		r->engine = e;
		pthread_mutex_init(&r->mu, NULL);
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		pthread_t t;
		if (pthread_create(&t, &attr, client_to_engine, r) != 0) {
			close(c);
			close(e);
			pthread_mutex_destroy(&r->mu);
			free(r);
		} else if (pthread_create(&t, &attr, engine_to_client, r) != 0) {
			shutdown(c, SHUT_RDWR); /* client_to_engine ends, and finishes for both */
			relay_finish(r);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

/* listen_native listens on the native port the clients use and picks a free private port
 * for clickhouse-local's own listener. */
static int listen_native(int port, int *ln_fd)
{
	int ln = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ln < 0 || setsockopt(ln, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(ln, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ln, 128) != 0) {
		fprintf(stderr, "chdb-serve: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
		return -1;
	}
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = 0};
	any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof any;
	if (probe < 0 || bind(probe, (struct sockaddr *)&any, sizeof any) != 0 ||
	    getsockname(probe, (struct sockaddr *)&any, &len) != 0) {
		fprintf(stderr, "chdb-serve: cannot find a free port: %s\n", strerror(errno));
		return -1;
	}
	close(probe);
	engine_port = ntohs(any.sin_port);
	*ln_fd = ln;
	return 0;
}

/* run_local runs clickhouse-local with args and writes its answer to stdout. */
static int run_local(void *lib, int argc, char **argv)
{
	query_cmdline_fn query_cmdline = (query_cmdline_fn)dlsym(lib, "chdb_query_cmdline");
	result_error_fn result_error = (result_error_fn)dlsym(lib, "chdb_result_error");
	result_buffer_fn result_buffer = (result_buffer_fn)dlsym(lib, "chdb_result_buffer");
	result_length_fn result_length = (result_length_fn)dlsym(lib, "chdb_result_length");
	if (query_cmdline == NULL || result_error == NULL || result_buffer == NULL || result_length == NULL) {
		fprintf(stderr, "chdb-serve: the library lacks the chdb_query_cmdline API\n");
		return 1;
	}
	argv[0] = "clickhouse";
	void *result = query_cmdline(argc, argv);
	if (result == NULL) {
		fprintf(stderr, "chdb-serve: no result\n");
		return 1;
	}
	const char *err = result_error(result);
	if (err != NULL && *err != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	size_t n = result_length(result);
	if (n > 0 && fwrite(result_buffer(result), 1, n, stdout) != n)
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[2], "--local") == 0) {
		void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
		if (lib == NULL) {
			fprintf(stderr, "chdb-serve: %s\n", dlerror());
			return 1;
		}
		return run_local(lib, argc - 2, argv + 2);
	}
	if (argc < 5) {
		fprintf(stderr, "usage: %s LIBCHDB STATE_DIR TCP_PORT HTTP_PORT [clickhouse-local options...]\n",
			argv[0]);
		return 2;
	}
	http_port = atoi(argv[4]);
	if (http_port <= 0 || http_port > 65535 || atoi(argv[3]) <= 0) {
		fprintf(stderr, "chdb-serve: bad port\n");
		return 2;
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* A client that disconnects mid-answer must cost its connection, not the server. */
	signal(SIGPIPE, SIG_IGN);
	pthread_t waiter;
	if (pthread_create(&waiter, NULL, signal_waiter, &set) != 0) {
		fprintf(stderr, "chdb-serve: cannot start the signal thread\n");
		return 1;
	}

	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL) {
		fprintf(stderr, "chdb-serve: %s\n", dlerror());
		return 1;
	}
	query_cmdline_fn query_cmdline = (query_cmdline_fn)dlsym(lib, "chdb_query_cmdline");
	result_error_fn result_error = (result_error_fn)dlsym(lib, "chdb_result_error");
	if (query_cmdline == NULL || result_error == NULL) {
		fprintf(stderr, "chdb-serve: %s lacks chdb_query_cmdline or chdb_result_error\n", argv[1]);
		return 1;
	}

	static int ln;
	if (listen_native(atoi(argv[3]), &ln) != 0)
		return 1;
	pthread_t acceptor;
	if (pthread_create(&acceptor, NULL, accept_loop, &ln) != 0) {
		fprintf(stderr, "chdb-serve: cannot start the native relay\n");
		return 1;
	}

	char **args = calloc((size_t)argc + 8, sizeof *args);
	if (args == NULL)
		return 1;
	int n = 0;
	args[n++] = "clickhouse";
	if (asprintf(&args[n++], "--path=%s", argv[2]) < 0 ||
	    asprintf(&args[n++], "--tcp_port=%d", engine_port) < 0 ||
	    asprintf(&args[n++], "--http_port=%s", argv[4]) < 0)
		return 1;
	args[n++] = "--listen_host=127.0.0.1";
	for (int i = 5; i < argc; i++)
		args[n++] = argv[i];
	args[n++] = "--multiquery";
	args[n++] = "--query=" SERVE_QUERY;

	fprintf(stderr, "chdb-serve: serving %s on 127.0.0.1:%s (HTTP %s; clickhouse-local's native listener on %d)\n",
		argv[2], argv[3], argv[4], engine_port);
	void *result = query_cmdline(n, args);
	const char *err = result != NULL ? result_error(result) : "no result";
	if (stopping) {
		fprintf(stderr, "chdb-serve: stopped\n");
		return 0;
	}
	fprintf(stderr, "chdb-serve: clickhouse-local returned: %s\n", err != NULL ? err : "(no error)");
	return 1;
}
