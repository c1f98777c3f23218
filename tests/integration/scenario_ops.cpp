// Ops: step recording and its wire form between the scenario child and the parent.
#include "scenario_ops.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <sstream>

namespace mirror::itest {

long Ops::Call(const char* name, long ret) {
  int err = ret < 0 ? errno : 0;  // first thing: nothing has touched errno yet
  steps_.push_back(Step{name, ret, err, {}});
  return ret;
}

int Ops::Fd(const char* name, int fd) {
  int err = fd < 0 ? errno : 0;
  steps_.push_back(Step{name, fd < 0 ? -1 : 0, err, {}});
  return fd;
}

void Ops::Note(const char* name, std::string data) {
  steps_.push_back(Step{name, 0, 0, std::move(data)});
}

int Ops::Open(const char* name, const std::string& rel, int flags, mode_t mode) {
  return Fd(name, ::open(P(rel).c_str(), flags | O_CLOEXEC, mode));
}

void Ops::Close(int fd) {
  if (fd >= 0) Call("close", ::close(fd));
}

void Ops::Stat(const char* name, const std::string& rel, bool follow) {
  struct stat st;
  int r = follow ? ::stat(P(rel).c_str(), &st) : ::lstat(P(rel).c_str(), &st);
  if (Call(name, r) < 0) return;
  char buf[128];
  snprintf(buf, sizeof(buf), "mode=%o uid=%u gid=%u size=%lld nlink=%lu", st.st_mode, st.st_uid,
           st.st_gid, static_cast<long long>(S_ISDIR(st.st_mode) ? 0 : st.st_size),
           static_cast<unsigned long>(st.st_nlink));
  steps_.back().data = buf;
}

void Ops::Times(const char* name, const std::string& rel) {
  struct stat st;
  if (Call(name, ::lstat(P(rel).c_str(), &st)) < 0) return;
  char buf[128];
  snprintf(buf, sizeof(buf), "atime=%lld.%09ld mtime=%lld.%09ld",
           static_cast<long long>(st.st_atim.tv_sec), st.st_atim.tv_nsec,
           static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
  steps_.back().data = buf;
}

void Ops::Content(const char* name, const std::string& rel) {
  int fd = Fd(name, ::open(P(rel).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd < 0) return;
  std::string bytes;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) bytes.append(buf, static_cast<size_t>(n));
  if (n < 0) bytes += "<read error " + std::to_string(errno) + ">";
  ::close(fd);
  steps_.back().data = std::move(bytes);
}

void Ops::MakeFile(const std::string& rel, const std::string& bytes, mode_t mode) {
  int fd = Fd("make: open", ::open(P(rel).c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, mode));
  if (fd < 0) return;
  Call("make: write", ::write(fd, bytes.data(), bytes.size()));
  Call("make: close", ::close(fd));
}

std::string Ops::Serialize() const {
  std::string out;
  for (const Step& s : steps_) {
    out += s.name + "\n" + std::to_string(s.ret) + " " + std::to_string(s.err) + " " +
           std::to_string(s.data.size()) + "\n" + s.data;
  }
  return out;
}

bool Ops::Parse(const std::string& bytes, std::vector<Step>* out) {
  out->clear();
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    if (nl == std::string::npos) return false;
    Step s;
    s.name = bytes.substr(pos, nl - pos);
    size_t nl2 = bytes.find('\n', nl + 1);
    if (nl2 == std::string::npos) return false;
    long long len = -1;
    if (sscanf(bytes.substr(nl + 1, nl2 - nl - 1).c_str(), "%ld %d %lld", &s.ret, &s.err, &len) != 3 ||
        len < 0 || nl2 + 1 + static_cast<size_t>(len) > bytes.size()) {
      return false;
    }
    s.data = bytes.substr(nl2 + 1, static_cast<size_t>(len));
    pos = nl2 + 1 + static_cast<size_t>(len);
    out->push_back(std::move(s));
  }
  return true;
}

std::string DescribeStep(const Step& step) {
  std::string out = step.name + ": ret=" + std::to_string(step.ret);
  if (step.err != 0) {
    const char* errname = strerrorname_np(step.err);
    out += " errno=" + (errname != nullptr ? std::string(errname) : std::to_string(step.err));
  }
  if (!step.data.empty()) {
    std::string shown = step.data.substr(0, 80);
    for (char& c : shown) {
      if (c < 0x20 || c > 0x7e) c = '.';
    }
    out += " data=" + shown;
    if (step.data.size() > 80) out += "...(" + std::to_string(step.data.size()) + " bytes)";
  }
  return out;
}

}  // namespace mirror::itest
