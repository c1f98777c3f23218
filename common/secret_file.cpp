#include "common/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/quote.h"
#include "common/unique_fd.h"

namespace mirror::common {

Result<std::string> ReadSecretFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno("secret file " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::IOError("fstat " + path, errno);
  if (!S_ISREG(st.st_mode))
    return Status::InvalidArgument("secret file " + path + " is not a file");
  if ((st.st_mode & 077) != 0) {
    return Status::PermissionDenied("secret file " + path +
                                    " is accessible by group or others (chmod 600 it)");
  }
  std::string secret(kMaxSecretBytes + 1, '\0');
  ssize_t n;
  do {
    n = ::read(fd.get(), secret.data(), secret.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::IOError("read " + path, errno);
  if (static_cast<size_t>(n) > kMaxSecretBytes) {
    return Status::InvalidArgument("secret file " + path + " is larger than 4096 bytes");
  }
  secret.resize(static_cast<size_t>(n));
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (secret.empty()) return Status::InvalidArgument("secret file " + path + " is empty");
  return secret;
}

Status SplitHostPort(const std::string& text, std::string* host, uint16_t* port) {
  const size_t colon = text.rfind(':');
  auto bad = [&] {
    return Status::InvalidArgument("address " + QuoteForMessage(text) + " is not HOST:PORT");
  };
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return bad();
  std::string h = text.substr(0, colon);
  if (h.front() == '[') {
    if (h.back() != ']' || h.size() < 3) return bad();
    h = h.substr(1, h.size() - 2);
  }
  uint32_t p = 0;
  for (size_t i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return bad();
    p = p * 10 + static_cast<uint32_t>(text[i] - '0');
    if (p > 65535) return bad();
  }
  *host = h;
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

}  // namespace mirror::common
