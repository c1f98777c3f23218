#include "mirrord/promote_cli.h"

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "mirrord/cli_args.h"
#include "mirrord/config.h"

#ifdef MIRRORD_HAVE_CONTROL
#include "control/control_client.h"
#endif

namespace mirror::d {
namespace {

// A promote applies everything received first: allow it time for a large backlog.
constexpr auto kPromoteTimeout = std::chrono::hours(6);

std::string Absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) != nullptr) return buf;
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.string();
}

struct PromoteArgs {
  std::string source;
  std::string state_dir = kDefaultStateDir;
  std::string config_path;
  std::string mountpoint = "MOUNTPOINT";
  bool force = false;
  bool json = false;
};

// The outcome for people: stdout when it worked, stderr otherwise.
void PrintText(const nlohmann::json& j) {
  const std::string outcome = j.value("outcome", "failed");
  const std::string source = j.value("source", "");
  const std::string epoch = std::to_string(j.value("epoch", uint64_t{0}));
  const std::string seq = std::to_string(j.value("promoted_seq", uint64_t{0}));
  if (outcome == "refused") {
    std::cerr << "mirrord: promote " << source << " refused: " << j.value("reason", "") << "\n"
              << "mirrord: --force promotes anyway (and says what may be missing)\n";
    return;
  }
  if (outcome == "failed") {
    std::cerr << "mirrord: promote " << source << " failed: " << j.value("reason", "") << "\n";
    return;
  }
  if (outcome == "already") {
    std::cout << "source '" << source << "' is already promoted (epoch " << epoch
              << ", image at seq " << seq << "); nothing to do\n";
  } else {
    std::cout << "promoted source '" << source << "' at epoch " << epoch
              << (j.value("forced", false) ? " (forced)" : "") << ": the image holds seq " << seq
              << " (" << j.value("received_seq", uint64_t{0}) << " received)\n"
              << "the old source is fenced: mirrord refuses its older epoch from now on\n";
  }
  for (const auto& w : j.value("warnings", nlohmann::json::array())) {
    std::cout << "warning: " << w.get<std::string>() << "\n";
  }
  std::cout << "mount the image read-write with:\n  " << j.value("mount_command", "") << "\n";
}

int ExitCode(const nlohmann::json& j) {
  const std::string outcome = j.value("outcome", "failed");
  if (outcome == "promoted" || outcome == "already") return kPromoteDone;
  return outcome == "refused" ? kPromoteRefused : kPromoteFailed;
}

nlohmann::json Failed(const std::string& source, const std::string& why) {
  return {{"ok", true}, {"source", source}, {"outcome", "failed"}, {"reason", why}};
}

// Where the state dir is and what a store is opened with: --config's, else the defaults.
common::Status ResolveConfig(PromoteArgs* a, StoreOptions* options) {
  if (a->config_path.empty()) return common::Status::Ok();
  QuickStartFlags flags;
  flags.config_path = a->config_path;
  flags.state_dir = a->state_dir == kDefaultStateDir ? "" : a->state_dir;
  MIRROR_ASSIGN_OR_RETURN(MirrordConfig config, LoadMirrordConfig(flags));
  *options = config.StoreOptionsFor(a->source);
  a->state_dir = config.state_dir;
  return common::Status::Ok();
}

// mirrord stopped: open the store here, under its lock, and promote it.
nlohmann::json PromoteOffline(const PromoteArgs& a, const StoreOptions& options) {
  const std::string& state_dir = a.state_dir;
  const std::string dir = state_dir + "/" + a.source;
  if (!ValidSourceId(a.source) || !std::filesystem::exists(dir + "/" + kStateFileName)) {
    return Failed(a.source, "no source '" + a.source + "' in " + state_dir);
  }
  std::string note;
  auto store = SourceStore::Open(dir, a.source, options, &note);
  if (!store.ok()) {
    return Failed(a.source, store.status().ToString() +
                                " (if mirrord is running, its control socket " + state_dir + "/" +
                                kControlSocketName + " did not answer)");
  }
  return PromoteOutcomeJson(a.source, dir + "/image", a.force, (*store)->Promote(a.force));
}

}  // namespace

nlohmann::json PromoteOutcomeJson(const std::string& source, const std::string& image, bool forced,
                                  const common::Result<PromoteResult>& result) {
  if (!result.ok()) return Failed(source, result.status().ToString());
  const PromoteResult& r = *result;
  nlohmann::json j = {{"ok", true},
                      {"source", source},
                      {"epoch", r.epoch},
                      {"promoted_seq", r.promoted_seq},
                      {"received_seq", r.received_seq},
                      {"forced", forced && !r.already && r.refused.empty()},
                      {"warnings", r.warnings},
                      {"image", Absolute(image)}};
  if (!r.refused.empty()) {
    j["outcome"] = "refused";
    j["reason"] = r.refused;
    return j;
  }
  j["outcome"] = r.already ? "already" : "promoted";
  j["reason"] = "";
  j["mount_command"] = "mirrorfs " + Absolute(image) + " MOUNTPOINT -o source_id=" + source;
  return j;
}

constexpr const char* kPromoteHelp =
    "usage:\n"
    "  mirrord promote SOURCE [--state-dir DIR | --config FILE] [--force] [--json]\n"
    "                  [--mountpoint MNT]\n"
    "\n"
    "Makes SOURCE's image a primary: applies every record received, raises the epoch\n"
    "(the old source is fenced from then on), and prints the command that mounts the\n"
    "image read-write. Through the running mirrord's control socket, or, with mirrord\n"
    "stopped, on the state dir under the store's lock. Refused while the image cannot be\n"
    "consistent (no data yet, a baseline or resync in progress, a failed store);\n"
    "--force promotes anyway and says what may be missing. --mountpoint fills in the\n"
    "printed command. Runbook: docs/operations.md.\n"
    "\n"
    "Exit codes: 0 promoted, or already promoted (nothing done, said so); 1 usage error;\n"
    "2 refused (the reason is printed); 3 failed (no such source, store locked, I/O).\n";

int PromoteCommand(const std::vector<std::string>& args) {
  PromoteArgs a;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << kPromoteHelp;
      return kPromoteDone;
    } else if (args[i] == "--force") {
      a.force = true;
    } else if (args[i] == "--json") {
      a.json = true;
    } else if (TakeValue(args, &i, "--state-dir", &v)) {
      a.state_dir = v;
    } else if (TakeValue(args, &i, "--config", &v)) {
      a.config_path = v;
    } else if (TakeValue(args, &i, "--mountpoint", &v)) {
      a.mountpoint = v;
    } else if (!args[i].empty() && args[i][0] != '-' && a.source.empty()) {
      a.source = args[i];
    } else {
      std::cerr << "mirrord: promote: unknown argument '" << args[i] << "'\n";
      return kPromoteUsage;
    }
  }
  if (a.source.empty()) {
    std::cerr << "mirrord: promote: which SOURCE? (mirrord status lists them)\n";
    return kPromoteUsage;
  }
  StoreOptions options;
  if (common::Status s = ResolveConfig(&a, &options); !s.ok()) {
    std::cerr << "mirrord: promote: " << s.ToString() << "\n";
    return kPromoteFailed;
  }
  nlohmann::json outcome;
#ifdef MIRRORD_HAVE_CONTROL
  auto reply = control::Request(a.state_dir + "/" + kControlSocketName,
                                {{"cmd", "promote"}, {"source", a.source}, {"force", a.force}},
                                kPromoteTimeout);
  if (reply.ok()) {
    outcome = reply->value("ok", false)
                  ? *reply
                  : Failed(a.source, reply->value("error", "the daemon refused the request"));
  } else if (reply.status().code() == common::Code::kUnavailable) {
    outcome = PromoteOffline(a, options);
  } else {
    outcome = Failed(a.source, reply.status().ToString());
  }
#else
  outcome = PromoteOffline(a, options);
#endif
  if (outcome.contains("mount_command")) {
    std::string cmd = outcome["mount_command"];
    const size_t at = cmd.find(" MOUNTPOINT ");
    if (at != std::string::npos) cmd.replace(at + 1, 10, a.mountpoint);
    outcome["mount_command"] = cmd;
  }
  if (a.json) {
    std::cout << outcome.dump() << "\n";
  } else {
    PrintText(outcome);
  }
  return ExitCode(outcome);
}

}  // namespace mirror::d
