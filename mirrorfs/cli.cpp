#include "mirrorfs/cli.h"

#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

#include "common/quote.h"
#include "common/status.h"
#include "control/control_client.h"

namespace mirror::fs {
namespace {

using common::Code;
using common::Result;
using common::Status;
using nlohmann::json;

constexpr const char* kDefaultRunDir = "/run/mirrorfs";
constexpr double kStatusTimeoutSeconds = 10;
constexpr double kCheckpointTimeoutSeconds = 300;
constexpr double kVerifyTimeoutSeconds = 24 * 3600;
constexpr double kMaxTimeoutSeconds = 7 * 24 * 3600;

constexpr const char* kStatusHelp =
    "Usage: mirrorfs status MOUNTPOINT [--json] [--timeout SECONDS]\n"
    "\n"
    "Shows the state of the mirrorfs daemon serving MOUNTPOINT: journal fill, sequence\n"
    "numbers, checkpoint age. Asks the daemon over its control socket (root only); the\n"
    "mount itself is not touched, so this works on a hung mount too.\n"
    "\n"
    "Options:\n"
    "  --json             print the daemon's answer as one JSON object on one line\n"
    "  --timeout SECONDS  how long to wait for the answer (default 10)\n"
    "  -h, --help         show this text\n"
    "\n"
    "Exit status:\n"
    "  0  the daemon answered and its state is \"running\"\n"
    "  1  usage error\n"
    "  2  the daemon answered with a degraded state (recovering, journal-full, ...)\n"
    "  3  no mirrorfs daemon answers for MOUNTPOINT (not mounted, not root, no answer\n"
    "     within the timeout, or the daemon refused the request)\n";

constexpr const char* kCheckpointHelp =
    "Usage: mirrorfs checkpoint MOUNTPOINT [--timeout SECONDS]\n"
    "\n"
    "Asks the mirrorfs daemon serving MOUNTPOINT to write a checkpoint now, waits until it\n"
    "is complete and prints its sequence number. Root only.\n"
    "\n"
    "Options:\n"
    "  --timeout SECONDS  how long to wait for the checkpoint (default 300)\n"
    "  -h, --help         show this text\n"
    "\n"
    "Exit status:\n"
    "  0  the checkpoint is complete\n"
    "  1  usage error\n"
    "  2  the daemon refused the checkpoint or it failed (the reason is printed)\n"
    "  3  no mirrorfs daemon answers for MOUNTPOINT, or it did not finish within the timeout\n";

constexpr const char* kVerifyHelp =
    "Usage: mirrorfs verify MOUNTPOINT [--timeout SECONDS]\n"
    "\n"
    "Checks that mirrord's image of the volume equals BACKING: takes a checkpoint (so the\n"
    "image holds every change made so far), then compares a manifest of each side, made\n"
    "where the data is (content hashes, modes, owners, sizes, mtimes, links, xattrs; no\n"
    "data is copied back), and prints every difference. Reads all of BACKING and of the\n"
    "image: run it when the mount is quiet, or changes made meanwhile show as\n"
    "differences. Root only.\n"
    "\n"
    "Options:\n"
    "  --timeout SECONDS  how long to wait for the answer (default 86400)\n"
    "  -h, --help         show this text\n"
    "\n"
    "Exit status:\n"
    "  0  identical\n"
    "  1  differences (each printed), or a usage error\n"
    "  2  the check could not be made (local-only mount, link to mirrord down, ...)\n"
    "  3  no mirrorfs daemon answers for MOUNTPOINT, or no answer within the timeout\n";

struct CliArgs {
  std::string command;
  std::string mountpoint;
  bool json = false;
  bool help = false;
  double timeout_seconds = 0;
};

// Text from the daemon as we print it: raw unless it holds control bytes (a path with a
// newline must not forge a line of the table).
std::string Printable(std::string_view text) {
  bool plain = std::none_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
  return plain ? std::string(text) : common::QuoteForMessage(text);
}

std::string Format(const char* fmt, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, value);
  return buf;
}

std::string Seconds(double s) { return Format(s == std::floor(s) ? "%.0f s" : "%.1f s", s); }

Result<double> ParseTimeout(const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end == nullptr || *end != '\0' || !std::isfinite(value) || value <= 0 ||
      value > kMaxTimeoutSeconds) {
    return Status::InvalidArgument(
        "--timeout wants seconds (a number above 0, at most 604800), not " +
        common::QuoteForMessage(text));
  }
  return value;
}

Result<CliArgs> ParseArgs(int argc, char** argv) {
  CliArgs args;
  args.command = argv[1];
  args.timeout_seconds = args.command == "status"   ? kStatusTimeoutSeconds
                         : args.command == "verify" ? kVerifyTimeoutSeconds
                                                    : kCheckpointTimeoutSeconds;
  bool options_done = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (!options_done && arg.size() > 1 && arg[0] == '-') {
      if (arg == "--") {
        options_done = true;
      } else if (arg == "-h" || arg == "--help") {
        args.help = true;
      } else if (arg == "--json" && args.command == "status") {
        args.json = true;
      } else if (arg == "--timeout" || arg.rfind("--timeout=", 0) == 0) {
        std::string value;
        if (arg == "--timeout") {
          if (i + 1 >= argc) return Status::InvalidArgument("--timeout needs a value");
          value = argv[++i];
        } else {
          value = arg.substr(std::strlen("--timeout="));
        }
        MIRROR_ASSIGN_OR_RETURN(args.timeout_seconds, ParseTimeout(value));
      } else {
        return Status::InvalidArgument("unknown option " + common::QuoteForMessage(arg));
      }
    } else if (args.mountpoint.empty()) {
      args.mountpoint = arg;
      if (arg.empty()) return Status::InvalidArgument("MOUNTPOINT is empty");
    } else {
      return Status::InvalidArgument("unexpected argument " + common::QuoteForMessage(arg));
    }
  }
  if (!args.help && args.mountpoint.empty())
    return Status::InvalidArgument("MOUNTPOINT is missing");
  return args;
}

// "12.0 MiB", "256 MiB", "512 B": one decimal below 100 units, none from 100 on.
std::string FormatBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  if (unit == 0) return Format("%.0f B", bytes);
  return Format(bytes < 100 ? "%.1f " : "%.0f ", bytes) + kUnits[unit];
}

// "3725 s" as "1h 2m 5s"; below a minute "4.2 s".
std::string FormatDuration(double seconds) {
  if (seconds < 60) return Seconds(seconds);
  auto total = static_cast<long long>(seconds);
  long long d = total / 86400, h = total / 3600 % 24, m = total / 60 % 60, s = total % 60;
  std::string text;
  if (d > 0) text += std::to_string(d) + "d ";
  if (d > 0 || h > 0) text += std::to_string(h) + "h ";
  return text + std::to_string(m) + "m " + std::to_string(s) + "s";
}

std::string FormatValue(const json& value) {
  if (value.is_string()) return Printable(value.get<std::string>());
  return Printable(value.dump(-1, ' ', false, json::error_handler_t::replace));
}

enum class Kind { kText, kDuration, kBytes, kFill, kSkipIfEmpty, kMirror };

struct Field {
  const char* key;
  const char* label;
  Kind kind;
};

// The table's rows in order. journal_bytes and journal_used_bytes make one "journal fill"
// row (kFill) when both are there.
constexpr Field kFields[] = {
    {"state", "state", Kind::kText},
    {"mountpoint", "mountpoint", Kind::kText},
    {"backing", "backing", Kind::kText},
    {"source_id", "source id", Kind::kText},
    {"volume_id", "volume id", Kind::kText},
    {"uptime_seconds", "uptime", Kind::kDuration},
    {"last_seq", "last seq", Kind::kText},
    {"cp_seq", "checkpoint seq", Kind::kText},
    {"cp_age_seconds", "checkpoint age", Kind::kDuration},
    {"journal_path", "journal", Kind::kText},
    {"journal_used_bytes", "journal fill", Kind::kFill},
    {"journal_bytes", "journal size", Kind::kBytes},
    {"journal_waiting_writers", "waiting writers", Kind::kText},
    {"journal_full_reason", "journal full", Kind::kSkipIfEmpty},
    {"ops_per_second", "ops/s", Kind::kText},
    {"recovered_records", "recovered records", Kind::kText},
    {"recovery", "last start", Kind::kText},
    {"recovery_failed_records", "recovery failures", Kind::kText},
    {"unjournaled_changes", "unjournaled changes", Kind::kText},
    {"mirror", "mirror", Kind::kMirror},
    {"cp_count", "checkpoints", Kind::kText},
    {"cp_failures", "checkpoint failures", Kind::kText},
    {"cp_last_error", "checkpoint error", Kind::kSkipIfEmpty},
    {"journal_error", "journal error", Kind::kSkipIfEmpty},
    {"pid", "pid", Kind::kText},
};

using Rows = std::vector<std::pair<std::string, std::string>>;

// The "mirror" object as a few rows ("local-only" when it is null).
void AddMirrorRows(const json& m, Rows& rows) {
  if (!m.is_object()) {
    rows.emplace_back("mirror", m.is_null() ? "local-only" : FormatValue(m));
    return;
  }
  auto text = [&m](const char* key) { return m.contains(key) ? FormatValue(m[key]) : "?"; };
  rows.emplace_back("mirror", text("link") + " to " + text("target") + " (mode " + text("mode") +
                                  ", on_disconnect " + text("on_disconnect") + ")");
  rows.emplace_back("mirror seqs", "received " + text("received_seq") + ", durable " +
                                       text("durable_seq") + ", applied " + text("applied_seq"));
  std::string lag = text("lag_records") + " records";
  if (m.contains("lag_bytes") && m["lag_bytes"].is_number()) {
    lag += ", " + FormatBytes(m["lag_bytes"].get<double>());
  }
  if (m.contains("lag_seconds") && m["lag_seconds"].is_number()) {
    lag += ", " + FormatDuration(m["lag_seconds"].get<double>());
  }
  rows.emplace_back("mirror lag", lag);
  if (m.contains("last_error") && m["last_error"].is_string() &&
      !m["last_error"].get<std::string>().empty()) {
    rows.emplace_back("mirror error", FormatValue(m["last_error"]));
  }
  if (m.contains("fenced") && m["fenced"].is_object()) {
    const json& f = m["fenced"];
    rows.emplace_back("mirror fenced",
                      "promoted at epoch " + FormatValue(f.value("epoch", json(0))) +
                          " with the image at seq " +
                          FormatValue(f.value("promoted_seq", json(0))) + "; " +
                          FormatValue(f.value("only_here_records", json(0))) +
                          " records after it are only here (failback: docs/operations.md)");
  }
  if (m.contains("resync") && m["resync"].is_object()) {
    const json& r = m["resync"];
    auto num = [&r](const char* key) {
      return r.contains(key) && r[key].is_number() ? r[key].get<double>() : 0.0;
    };
    std::string line = (r.value("baseline", false) ? "baseline " : "resync ") +
                       r.value("phase", std::string("?")) + Format(" %.0f%%", num("percent"));
    line += ", " + FormatBytes(num("bytes_done")) + " of " + FormatBytes(num("bytes_total")) +
            " compared, " + FormatBytes(num("bytes_sent")) + " sent";
    if (num("seconds_left") > 0) line += ", " + FormatDuration(num("seconds_left")) + " left";
    rows.emplace_back("mirror resync", line);
  }
}

// Adds the row for `field` if the reply has it; removes what it used from `rest`.
void AddRow(const Field& field, json& rest, Rows& rows) {
  auto it = rest.find(field.key);
  if (it == rest.end()) return;
  const json value = *it;
  rest.erase(it);
  switch (field.kind) {
    case Kind::kText:
      rows.emplace_back(field.label, FormatValue(value));
      return;
    case Kind::kDuration:
      rows.emplace_back(field.label, value.is_number() ? FormatDuration(value.get<double>())
                                                       : FormatValue(value));
      return;
    case Kind::kBytes:
      rows.emplace_back(field.label,
                        value.is_number() ? FormatBytes(value.get<double>()) : FormatValue(value));
      return;
    case Kind::kSkipIfEmpty:
      if (!(value.is_string() && value.get<std::string>().empty())) {
        rows.emplace_back(field.label, FormatValue(value));
      }
      return;
    case Kind::kMirror:
      AddMirrorRows(value, rows);
      return;
    case Kind::kFill: {
      auto size = rest.find("journal_bytes");
      if (!value.is_number() || size == rest.end() || !size->is_number()) {
        rows.emplace_back("journal used", value.is_number() ? FormatBytes(value.get<double>())
                                                            : FormatValue(value));
        return;
      }
      double used = value.get<double>(), total = size->get<double>();
      rest.erase(size);
      std::string text = FormatBytes(used) + " of " + FormatBytes(total);
      if (total > 0) text += Format(" (%.1f%%)", 100.0 * used / total);
      rows.emplace_back(field.label, text);
      return;
    }
  }
}

// `key: value` lines, values aligned; known fields first, then any others (by key).
void PrintStatusTable(json status, std::ostream& out) {
  Rows rows;
  for (const Field& field : kFields) AddRow(field, status, rows);
  for (auto& [key, value] : status.items()) rows.emplace_back(Printable(key), FormatValue(value));
  std::size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& [label, value] : rows) {
    out << label << ':' << std::string(width - label.size() + 1, ' ') << value << '\n';
  }
}

// Reports why the daemon could not be asked; returns kCliUnreachable.
int ReportUnreachable(const CliArgs& args, const std::string& socket, const Status& status,
                      std::ostream& err) {
  const std::string who = "mirrorfs " + args.command + ": ";
  switch (status.code()) {
    case Code::kUnavailable:
      err << who << "no mirrorfs daemon answers for " << args.mountpoint << " (socket " << socket
          << ")\n";
      break;
    case Code::kDeadlineExceeded:
      err << who << "the mirrorfs daemon for " << args.mountpoint << " did not answer within "
          << Seconds(args.timeout_seconds) << " (socket " << socket << ")\n";
      break;
    case Code::kPermissionDenied:
      err << who << "permission denied on socket " << socket << " (run as root)\n";
      break;
    default:
      err << who << "cannot ask the daemon for " << args.mountpoint << ": " << status.message()
          << "\n";
      break;
  }
  return kCliUnreachable;
}

std::string ErrorOf(const json& reply) {
  auto it = reply.find("error");
  return it != reply.end() && it->is_string() ? Printable(it->get<std::string>())
                                              : "no reason given";
}

Result<json> Ask(const CliArgs& args, const std::string& socket, const char* cmd) {
  auto timeout =
      std::chrono::milliseconds(static_cast<long long>(std::ceil(args.timeout_seconds * 1000)));
  return control::Request(socket, json{{"cmd", cmd}}, timeout);
}

int RunStatus(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const std::string socket = ControlSocketPath(args.mountpoint);
  auto reply = Ask(args, socket, "status");
  if (!reply.ok()) return ReportUnreachable(args, socket, reply.status(), err);
  auto ok = reply->find("ok");
  if (ok == reply->end() || *ok != true) {
    err << "mirrorfs status: the daemon for " << args.mountpoint << " refused: " << ErrorOf(*reply)
        << "\n";
    return kCliUnreachable;
  }
  reply->erase(ok);
  auto state = reply->find("state");
  bool running = state != reply->end() && *state == "running";
  if (args.json) {
    out << reply->dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  } else {
    PrintStatusTable(*reply, out);
  }
  out.flush();
  return running ? kCliOk : kCliFailed;
}

int RunCheckpoint(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const std::string socket = ControlSocketPath(args.mountpoint);
  auto reply = Ask(args, socket, "checkpoint");
  if (!reply.ok()) return ReportUnreachable(args, socket, reply.status(), err);
  auto ok = reply->find("ok");
  if (ok == reply->end() || *ok != true) {
    err << "mirrorfs checkpoint: the daemon for " << args.mountpoint
        << " did not checkpoint: " << ErrorOf(*reply) << "\n";
    return kCliFailed;
  }
  auto seq = reply->find("cp_seq");
  out << "checkpoint complete";
  if (seq != reply->end() && seq->is_number_integer()) out << " at seq " << seq->dump();
  out << '\n' << std::flush;
  return kCliOk;
}

// Exit 0 identical, 1 differences, 2 not checked, 3 unreachable (kVerifyHelp).
int RunVerify(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const std::string socket = ControlSocketPath(args.mountpoint);
  auto reply = Ask(args, socket, "verify");
  if (!reply.ok()) return ReportUnreachable(args, socket, reply.status(), err);
  auto ok = reply->find("ok");
  if (ok == reply->end() || *ok != true) {
    err << "mirrorfs verify: " << args.mountpoint << " could not be verified: " << ErrorOf(*reply)
        << "\n";
    return kCliFailed;
  }
  const json diffs = reply->value("differences", json::array());
  for (const json& d : diffs)
    out << (d.is_string() ? Printable(d.get<std::string>()) : d.dump()) << '\n';
  const uint64_t entries = reply->value("entries", uint64_t{0});
  const uint64_t count = reply->value("difference_count", uint64_t{diffs.size()});
  const std::string at =
      " (checkpoint seq " + std::to_string(reply->value("cp_seq", uint64_t{0})) + ")";
  if (count == 0) {
    out << "identical: " << entries << " entries of BACKING and the image agree" << at << '\n';
    out.flush();
    return kCliOk;
  }
  out << count << " difference(s) between BACKING and the image" << at << '\n';
  out.flush();
  return kCliUsage;  // 1: differences
}

}  // namespace

std::string NormalizeMountpoint(const std::string& mountpoint) {
  std::string absolute = mountpoint;
  if (absolute.empty() || absolute[0] != '/') {
    std::error_code ec;
    std::string cwd = std::filesystem::current_path(ec).string();
    absolute = (ec || cwd.empty() ? std::string("/") : cwd) + "/" + absolute;
  }
  std::vector<std::string> parts;
  std::size_t start = 0;
  // Bounded by the length of the path: each pass consumes one component.
  while (start <= absolute.size()) {
    std::size_t slash = absolute.find('/', start);
    if (slash == std::string::npos) slash = absolute.size();
    std::string part = absolute.substr(start, slash - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(std::move(part));
    }
    start = slash + 1;
  }
  if (parts.empty()) return "/";
  std::string parent;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) parent += "/" + parts[i];
  if (parent.empty()) parent = "/";
  if (char* real = ::realpath(parent.c_str(), nullptr)) {
    parent = real;
    std::free(real);
  }
  return (parent == "/" ? "" : parent) + "/" + parts.back();
}

std::string ControlSocketPath(const std::string& mountpoint) {
  const std::string normalized = NormalizeMountpoint(mountpoint);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(normalized.data()), normalized.size(), digest);
  static const char kHex[] = "0123456789abcdef";
  std::string name;
  for (int i = 0; i < 8; ++i) {
    name += kHex[digest[i] >> 4];
    name += kHex[digest[i] & 0xf];
  }
  const char* env = std::getenv("MIRRORFS_RUN_DIR");
  std::string dir = env != nullptr && *env != '\0' ? env : kDefaultRunDir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + "/" + name + ".sock";
}

bool IsCliCommand(const char* arg) {
  return arg != nullptr && (std::strcmp(arg, "status") == 0 ||
                            std::strcmp(arg, "checkpoint") == 0 || std::strcmp(arg, "verify") == 0);
}

int RunCli(int argc, char** argv) { return RunCli(argc, argv, std::cout, std::cerr); }

int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  if (argc < 2 || !IsCliCommand(argv[1])) {
    err << "mirrorfs: unknown command (expected status, checkpoint or verify)\n";
    return kCliUsage;
  }
  const std::string command = argv[1];
  auto args = ParseArgs(argc, argv);
  if (!args.ok()) {
    err << "mirrorfs " << command << ": " << args.status().message() << " (try 'mirrorfs "
        << command << " --help')\n";
    return kCliUsage;
  }
  if (args->help) {
    out << (command == "status"   ? kStatusHelp
            : command == "verify" ? kVerifyHelp
                                  : kCheckpointHelp)
        << std::flush;
    return kCliOk;
  }
  if (command == "verify") return RunVerify(*args, out, err);
  return command == "status" ? RunStatus(*args, out, err) : RunCheckpoint(*args, out, err);
}

}  // namespace mirror::fs
