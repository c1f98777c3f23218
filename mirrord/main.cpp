// mirrord: the receiver daemon. `mirrord serve ...` runs it in the foreground;
// `mirrord status ...` asks the running one. Usage: mirrord --help; mirrord/README.md.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common/config_units.h"
#include "mirrord/adopt_cli.h"
#include "mirrord/cli_args.h"
#include "mirrord/config.h"
#include "mirrord/log.h"
#include "mirrord/promote_cli.h"
#include "mirrord/server.h"
#include "mirrord/status_cli.h"

#ifdef MIRRORD_HAVE_CONTROL
#include "control/control_client.h"
#endif

namespace {

using namespace mirror::d;

constexpr const char* kUsage =
    "usage:\n"
    "  mirrord serve --config FILE [--listen HOST:PORT]... [--state-dir DIR]\n"
    "  mirrord serve --listen HOST:PORT --state-dir DIR --secret-file FILE\n"
    "  mirrord status [SOURCE] [--json] [--state-dir DIR] [--max-lag SECONDS]\n"
    "  mirrord promote SOURCE [--state-dir DIR | --config FILE] [--force] [--json]\n"
    "                  [--mountpoint MNT]\n"
    "  mirrord adopt SOURCE [DIR] [--journal JOURNAL] [--after-seq N] [--state-dir SD]\n"
    "                [--json]\n"
    "  mirrord --help | --version\n"
    "\n"
    "serve runs in the foreground; SIGTERM or SIGINT stop it cleanly (flush, close).\n"
    "Without --config, any source id is accepted with the one secret of --secret-file.\n"
    "status exits 0 healthy, 1 lagging (a source not connected, or unapplied records\n"
    "older than --max-lag), 2 broken, 3 unknown\n"
    "(daemon not reachable, or no such source).\n"
    "promote makes SOURCE's image a primary (mirrord running or stopped): exits 0 promoted\n"
    "(or already), 2 refused as not consistent (--force overrides), 3 failed.\n"
    "adopt makes DIR (an old source's BACKING) or a promoted image the destination of\n"
    "SOURCE again (failback), saving first what the journal never shipped: exits 0 done,\n"
    "2 refused, 3 failed (mirrord adopt --help).\n";

int Usage(const std::string& error) {
  std::cerr << "mirrord: " << error << "\n" << kUsage;
  return 1;
}

int Serve(const std::vector<std::string>& args) {
  QuickStartFlags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    if (TakeValue(args, &i, "--config", &v)) {
      flags.config_path = v;
    } else if (TakeValue(args, &i, "--listen", &v)) {
      flags.listen.push_back(v);
    } else if (TakeValue(args, &i, "--state-dir", &v)) {
      flags.state_dir = v;
    } else if (TakeValue(args, &i, "--secret-file", &v)) {
      flags.secret_file = v;
    } else {
      return Usage("serve: unknown or incomplete argument '" + args[i] + "'");
    }
  }
  auto config = LoadMirrordConfig(flags);
  if (!config.ok()) {
    Log(LogLevel::kError, config.status().ToString());
    return 1;
  }
  Server server(std::move(config).value());
  if (auto s = server.Start(); !s.ok()) {
    Log(LogLevel::kError, s.ToString());
    return 1;
  }
  Log(LogLevel::kNotice, std::string("mirrord ") + MIRRORD_VERSION + " serving");
  server.Run();
  return 0;
}

int Status(const std::vector<std::string>& args) {
  std::optional<std::string> source;
  bool json = false;
  std::string state_dir = kDefaultStateDir;
  double max_lag = -1;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    if (args[i] == "--json") {
      json = true;
    } else if (TakeValue(args, &i, "--state-dir", &v)) {
      state_dir = v;
    } else if (TakeValue(args, &i, "--max-lag", &v)) {
      auto seconds = mirror::common::ParseUint(v);
      if (!seconds.ok()) return Usage("status: --max-lag takes whole seconds");
      max_lag = static_cast<double>(*seconds);
    } else if (!args[i].empty() && args[i][0] != '-' && !source) {
      source = args[i];
    } else {
      return Usage("status: unknown argument '" + args[i] + "'");
    }
  }
#ifdef MIRRORD_HAVE_CONTROL
  auto reply = mirror::control::Request(state_dir + "/" + kControlSocketName, {{"cmd", "status"}},
                                        std::chrono::seconds(5));
  if (!reply.ok()) {
    std::cerr << "mirrord: status: " << reply.status().ToString() << "\n";
    return kStatusUnknown;
  }
  if (!reply->value("ok", false)) {
    std::cerr << "mirrord: status: " << reply->value("error", "failed") << "\n";
    return kStatusUnknown;
  }
  nlohmann::json sources = SelectSources(*reply, source);
  if (json) {
    std::cout << nlohmann::json{{"sources", sources}}.dump() << "\n";
  } else {
    std::cout << FormatStatusText(sources);
  }
  if (source && sources.empty()) {
    std::cerr << "mirrord: status: no source '" << *source << "'\n";
    return kStatusUnknown;
  }
  return StatusExitCode(sources, max_lag);
#else
  (void)json;
  std::cerr << "mirrord: status: built without the control socket library\n";
  return kStatusUnknown;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that closes while we write must cost an EPIPE, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("no command");
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage << "\nconfig file keys (JSON):\n" << MirrordSchema().HelpText();
    return 0;
  }
  if (cmd == "--version" || cmd == "-V") {
    std::cout << "mirrord " << MIRRORD_VERSION << "\n";
    return 0;
  }
  if (cmd == "serve") return Serve(args);
  if (cmd == "status") return Status(args);
  if (cmd == "promote") return PromoteCommand(args);
  if (cmd == "adopt") return AdoptCommand(args);
  return Usage("unknown command '" + cmd + "'");
}
