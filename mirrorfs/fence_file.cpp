#include "mirrorfs/fence_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/unique_fd.h"

namespace mirror::fs {
namespace {

// The number after `key` in `text`, 0 when absent.
uint64_t NumberAfter(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return 0;
  uint64_t value = 0;
  for (size_t i = at + key.size(); i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  return value;
}

std::string UtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

FenceInfo ParseFenceMessage(const std::string& message) {
  FenceInfo info;
  info.message = message;
  info.epoch = NumberAfter(message, "promoted at epoch ");
  info.promoted_seq = NumberAfter(message, "(image at seq ");
  return info;
}

common::Result<std::optional<FenceInfo>> ReadFenceFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<FenceInfo>();
    return common::Status::IOError("open " + path, errno);
  }
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return common::Status::Corruption(path + " is not a JSON object");
  }
  FenceInfo info;
  info.epoch = j.value("epoch", uint64_t{0});
  info.promoted_seq = j.value("promoted_seq", uint64_t{0});
  info.message = j.value("message", "");
  info.time = j.value("time", "");
  return std::optional<FenceInfo>(std::move(info));
}

common::Status WriteFenceFile(const std::string& path, FenceInfo info) {
  if (info.time.empty()) info.time = UtcNow();
  const std::string text = nlohmann::json{{"epoch", info.epoch},
                                          {"promoted_seq", info.promoted_seq},
                                          {"message", info.message},
                                          {"time", info.time}}
                               .dump() +
                           "\n";
  const std::string tmp = path + ".tmp";
  {
    common::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return common::Status::IOError("create " + tmp, errno);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        ::fsync(fd.get()) != 0) {
      return common::Status::IOError("write " + tmp, errno);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return common::Status::IOError("rename " + tmp, errno);
  return common::Status::Ok();
}

}  // namespace mirror::fs
