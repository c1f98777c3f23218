// The metadata half of bench/fs_bench.sh: in DIR, creates COUNT files (open O_CREAT|O_EXCL,
// write 4 KiB, close), then unlinks them all, and prints each phase's rate as one JSON line:
//
//   build/bench/bench_createloop DIR COUNT
//   {"files": 20000, "create_per_s": 41234.5, "unlink_per_s": 80321.0}
//
// One run per call; fs_bench.sh calls it once per target and run and takes the median.
// Files are named f0000000.. directly in DIR, which must exist; DIR ends as it began.
// Written in C++ rather than as a shell loop so that the figure is the filesystem's cost,
// not fork+exec's. Exit status: 0 ok, 1 usage error, 2 a system call failed (after
// removing the files it had created).
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"

namespace {

constexpr size_t kFileBytes = 4096;
constexpr long kMaxFiles = 10'000'000;

void PrintUsage(std::FILE* out) {
  std::fprintf(out,
               "usage: bench_createloop DIR COUNT\n"
               "  creates COUNT files of 4 KiB in DIR (create+write+close), then unlinks them;\n"
               "  prints {\"files\": N, \"create_per_s\": X, \"unlink_per_s\": Y}\n");
}

std::string FileName(const std::string& dir, long i) {
  char name[32];
  std::snprintf(name, sizeof(name), "/f%07ld", i);
  return dir + name;
}

// Writes all of `data`, retrying short writes and EINTR. Returns false with errno set.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Creates one file with `content`. The close is part of the measured operation (it is a
// FUSE flush + release), so it happens here and its error counts.
bool CreateOne(const std::string& path, const std::vector<char>& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = WriteAll(fd, content.data(), content.size());
  int saved = errno;
  if (::close(fd) != 0 && ok) return false;
  errno = saved;
  return ok;
}

void RemoveFirst(const std::vector<std::string>& names, long count) {
  for (long i = 0; i < count; ++i) ::unlink(names[static_cast<size_t>(i)].c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (mirror::bench::HasFlag(argc, argv, "--help")) {
    PrintUsage(stdout);
    return 0;
  }
  if (argc != 3) {
    PrintUsage(stderr);
    return 1;
  }
  const std::string dir = argv[1];
  char* end = nullptr;
  const long count = std::strtol(argv[2], &end, 10);
  if (end == argv[2] || *end != '\0' || count < 1 || count > kMaxFiles) {
    std::fprintf(stderr, "bench_createloop: COUNT must be 1..%ld, got '%s'\n", kMaxFiles, argv[2]);
    return 1;
  }

  // Names are built before the clock starts so that only the syscalls are timed.
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(count));
  for (long i = 0; i < count; ++i) names.push_back(FileName(dir, i));
  std::vector<char> content(kFileBytes);
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);

  double start = mirror::bench::Seconds();
  for (long i = 0; i < count; ++i) {
    const std::string& name = names[static_cast<size_t>(i)];
    if (!CreateOne(name, content)) {
      std::fprintf(stderr, "bench_createloop: create %s: %s\n", name.c_str(), std::strerror(errno));
      RemoveFirst(names, i + 1);  // the failed one may exist too
      return 2;
    }
  }
  const double create_seconds = mirror::bench::Seconds() - start;

  start = mirror::bench::Seconds();
  for (long i = 0; i < count; ++i) {
    const std::string& name = names[static_cast<size_t>(i)];
    if (::unlink(name.c_str()) != 0) {
      std::fprintf(stderr, "bench_createloop: unlink %s: %s\n", name.c_str(), std::strerror(errno));
      RemoveFirst(names, count);
      return 2;
    }
  }
  const double unlink_seconds = mirror::bench::Seconds() - start;

  std::printf("{\"files\": %ld, \"create_per_s\": %.1f, \"unlink_per_s\": %.1f}\n", count,
              static_cast<double>(count) / create_seconds,
              static_cast<double>(count) / unlink_seconds);
  return 0;
}
