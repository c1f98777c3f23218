#include "common/fence_file.h"

#include <cerrno>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/file_replace.h"

namespace mirror::common {
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

std::string FenceMessage(uint64_t epoch, uint64_t promoted_seq) {
  return "fenced: promoted at epoch " + std::to_string(epoch) + " (image at seq " +
         std::to_string(promoted_seq) + ")";
}

FenceInfo ParseFenceMessage(const std::string& message) {
  FenceInfo info;
  info.message = message;
  info.epoch = NumberAfter(message, "promoted at epoch ");
  info.promoted_seq = NumberAfter(message, "(image at seq ");
  return info;
}

Result<std::optional<FenceInfo>> ReadFenceFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::optional<FenceInfo>();
    return Status::IOError("open " + path, errno);
  }
  std::stringstream text;
  text << in.rdbuf();
  auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::Corruption(path + ": not a JSON object");
  FenceInfo info;
  auto number = [&](const char* key, uint64_t* out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Ok();
    if (!it->is_number_unsigned()) {
      return Status::Corruption(path + ": key '" + key + "' is not a whole number");
    }
    *out = it->get<uint64_t>();
    return Status::Ok();
  };
  MIRROR_RETURN_IF_ERROR(number("epoch", &info.epoch));
  MIRROR_RETURN_IF_ERROR(number("promoted_seq", &info.promoted_seq));
  if (auto it = j.find("message"); it != j.end() && it->is_string()) info.message = *it;
  if (auto it = j.find("time"); it != j.end() && it->is_string()) info.time = *it;
  return std::optional<FenceInfo>(std::move(info));
}

Status WriteFenceFile(const std::string& path, FenceInfo info) {
  if (info.time.empty()) info.time = UtcNow();
  const nlohmann::json j = {{"epoch", info.epoch},
                            {"promoted_seq", info.promoted_seq},
                            {"message", info.message},
                            {"time", info.time}};
  return ReplaceFile(path, j.dump() + "\n");
}

}  // namespace mirror::common
