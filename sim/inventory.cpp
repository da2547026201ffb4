#include "inventory.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <numbers>
#include <set>
#include <stdexcept>

#include "common/strings.h"
#include "data.h"
#include "yaml_doc.h"

namespace sim {

// ---------------------------------------------------------------------------
// Host model
// ---------------------------------------------------------------------------

struct DiskModel {
  std::string letter;  // "C:"
  std::uint64_t size_bytes;
  double free_frac;
  double reads_per_s, writes_per_s, read_bytes_per_op, write_bytes_per_op, latency_s;
  double phase;
  std::string serial;
  std::string volume_name;
};

struct NicModel {
  std::string description;  // Win32_NetworkAdapterConfiguration Description
  std::string perf_name;    // Tcpip_NetworkInterface Name
  std::string service_name;
  std::string mac, ipv4, ipv6, gateway, guid;
  std::uint64_t bandwidth_bps;
  double rx_bytes_per_s, tx_bytes_per_s, phase;
  int index, interface_index;
};

// Models hold views into static tables only: 10,000 hosts must fit in little memory.
struct ServiceModel {
  int catalog;  // -1 = synthetic
  std::string_view name;
  std::string_view display;
  std::string_view path;
  std::string_view start_mode;
  std::string_view state;
  std::string_view start_name;
  bool own_process;
  std::uint32_t pid;
};

struct ProcessModel {
  std::string_view name;
  std::string_view exe_path;  // empty = C:\\Windows\\system32\\<name> (none for pid 0/4)
  std::uint32_t pid, ppid;
  int session;
  double cpu_share;  // fraction of one CPU
  std::uint64_t working_set, private_bytes, virtual_bytes;
  std::uint32_t handles, threads, priority;
  double start_offset_s;  // seconds after boot
  double io_read_bps, io_write_bps;
};

struct HostModel {
  std::string host;  // lower-cased virtual host name
  std::uint64_t seed;
  std::string cs_name;  // NETBIOS style upper case
  std::string dns_host, domain;
  int cpus, sockets;
  std::uint64_t mem_bytes, pagefile_bytes;
  int os;
  double boot_unix, install_unix;
  double avail_frac;
  std::vector<double> core_busy, core_phase;
  std::vector<DiskModel> disks;
  std::vector<NicModel> nics;
  std::vector<ServiceModel> services;
  std::vector<ProcessModel> processes;
  std::string serial_number;
  std::string cpu_name;
  int cpu_mhz;
  std::string manufacturer, model_name;
  double clock_offset_s = 0;  // host clock minus true time (Win32_UTCTime, LocalDateTime)
};

namespace {

constexpr double kFiletimeEpochOffset = 11644473600.0;  // seconds 1601 -> 1970
constexpr double kTwoPi = 2 * std::numbers::pi;

struct Rng {
  std::uint64_t state;
  explicit Rng(std::uint64_t s) : state(s) {}
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int range(int lo, int hi) {
    return lo + static_cast<int>(next() % static_cast<std::uint64_t>(hi - lo + 1));
  }
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * (static_cast<double>(next() >> 11) / 9007199254740992.0);
  }
  bool chance(double p) { return uniform(0, 1) < p; }
};

std::uint64_t filetime(double unix_s) {
  return static_cast<std::uint64_t>((unix_s + kFiletimeEpochOffset) * 1e7);
}

// Integral of base*(1 + amp*sin(2*pi*t/period + phase)) from 0 to t: a monotonic counter
// whose rate wanders between base*(1-amp) and base*(1+amp).
double wave_integral(double t, double base, double amp, double period, double phase) {
  return base * t +
         base * amp * (std::cos(phase) - std::cos(kTwoPi * t / period + phase)) * period / kTwoPi;
}

double gauge(double t, double base, double amp, double period, double phase) {
  return base * (1 + amp * std::sin(kTwoPi * t / period + phase));
}

std::uint64_t u64(double v) { return v <= 0 ? 0 : static_cast<std::uint64_t>(v); }

// The catalogues hosts draw from (sim/data/catalogues.yml, embedded).
struct OsInfo {
  std::string caption, version, build;
  int sku;
};
struct CpuInfo {
  std::string name;
  int mhz;
};
struct Maker {
  std::string manufacturer, model;
};
struct NicKind {
  std::string description, service;
  std::uint64_t mbps;  // link speed
};
struct Miniport {
  std::string description, service;
  bool adapter;  // listed by Win32_NetworkAdapter too
};
struct BootProcess {
  std::string name;
  int session;
};
struct ServiceSpec {
  std::string name, display, path;
  std::string start_mode;  // typical
  bool running;            // typical
  std::string start_name;
  bool own_process;
};
struct EventKind {
  std::string logfile, source;
  std::uint32_t code;
  int event_type;
  double interval;
  std::string message;
};
struct Catalogue {
  std::vector<OsInfo> oses;
  std::vector<CpuInfo> cpus;
  std::vector<Maker> makers;
  std::vector<NicKind> nics;
  std::vector<Miniport> miniports;
  std::vector<BootProcess> boot_processes;
  std::vector<std::string> app_processes;
  int core_services;  // the first services exist on every host
  std::vector<ServiceSpec> services;
  std::vector<EventKind> events;
  std::vector<std::string> system32_files;
};

// Each list must hold at least one entry: hosts pick from them by index.
template <typename T, typename Read>
std::vector<T> read_list(const YamlDoc& d, const YAML::Node& root, const char* key, Read read) {
  const YAML::Node list = root[key];
  if (!list.IsSequence() || list.size() == 0) d.fail(list, key, "expected a non-empty list");
  std::vector<T> out;
  for (const auto& item : list) out.push_back(read(item, std::string(key) + "[]"));
  return out;
}

Catalogue load_catalogue() {
  const YamlDoc d("sim/data/catalogues.yml");
  const YAML::Node root = d.source().load(data::text(d.source().name()));
  d.check_keys(root, "top level",
               {"oses", "cpus", "makers", "nics", "miniports", "boot_processes", "app_processes",
                "core_services", "services", "events", "system32_files"});
  auto str = [&](const YAML::Node& n, const std::string& where, const char* key) {
    return d.scalar<std::string>(n[key], where + "." + key);
  };
  Catalogue c;
  c.oses = read_list<OsInfo>(d, root, "oses", [&](const YAML::Node& n, const std::string& w) {
    d.check_keys(n, w, {"caption", "version", "build", "sku"});
    return OsInfo{str(n, w, "caption"), str(n, w, "version"), str(n, w, "build"),
                  d.scalar<int>(n["sku"], w + ".sku")};
  });
  c.cpus = read_list<CpuInfo>(d, root, "cpus", [&](const YAML::Node& n, const std::string& w) {
    d.check_keys(n, w, {"name", "mhz"});
    return CpuInfo{str(n, w, "name"), d.scalar<int>(n["mhz"], w + ".mhz")};
  });
  c.makers = read_list<Maker>(d, root, "makers", [&](const YAML::Node& n, const std::string& w) {
    d.check_keys(n, w, {"manufacturer", "model"});
    return Maker{str(n, w, "manufacturer"), str(n, w, "model")};
  });
  c.nics = read_list<NicKind>(d, root, "nics", [&](const YAML::Node& n, const std::string& w) {
    d.check_keys(n, w, {"description", "service", "mbps"});
    return NicKind{str(n, w, "description"), str(n, w, "service"),
                   d.scalar<std::uint64_t>(n["mbps"], w + ".mbps")};
  });
  c.miniports =
      read_list<Miniport>(d, root, "miniports", [&](const YAML::Node& n, const std::string& w) {
        d.check_keys(n, w, {"description", "service", "adapter"});
        return Miniport{str(n, w, "description"), str(n, w, "service"),
                        d.scalar<bool>(n["adapter"], w + ".adapter")};
      });
  c.boot_processes = read_list<BootProcess>(
      d, root, "boot_processes", [&](const YAML::Node& n, const std::string& w) {
        d.check_keys(n, w, {"name", "session"});
        return BootProcess{str(n, w, "name"), d.scalar<int>(n["session"], w + ".session")};
      });
  c.app_processes = d.strings(root["app_processes"], "app_processes");
  c.services =
      read_list<ServiceSpec>(d, root, "services", [&](const YAML::Node& n, const std::string& w) {
        d.check_keys(
            n, w,
            {"name", "display", "path", "start_mode", "running", "start_name", "own_process"});
        return ServiceSpec{str(n, w, "name"),
                           str(n, w, "display"),
                           str(n, w, "path"),
                           str(n, w, "start_mode"),
                           d.scalar<bool>(n["running"], w + ".running"),
                           str(n, w, "start_name"),
                           d.scalar<bool>(n["own_process"], w + ".own_process")};
      });
  c.core_services = d.scalar<int>(root["core_services"], "core_services");
  if (c.core_services < 0 || c.core_services > static_cast<int>(c.services.size()))
    d.fail(root["core_services"], "core_services", "must be within the services list");
  c.events =
      read_list<EventKind>(d, root, "events", [&](const YAML::Node& n, const std::string& w) {
        d.check_keys(n, w, {"logfile", "source", "code", "type", "interval", "message"});
        EventKind e{str(n, w, "logfile"),
                    str(n, w, "source"),
                    d.scalar<std::uint32_t>(n["code"], w + ".code"),
                    d.scalar<int>(n["type"], w + ".type"),
                    d.scalar<double>(n["interval"], w + ".interval"),
                    str(n, w, "message")};
        if (e.event_type < 1 || e.event_type > 5) d.fail(n["type"], w + ".type", "must be 1 to 5");
        if (!(e.interval >= 1)) d.fail(n["interval"], w + ".interval", "must be >= 1 (seconds)");
        return e;
      });
  c.system32_files = d.strings(root["system32_files"], "system32_files");
  if (c.app_processes.empty()) d.fail(root["app_processes"], "app_processes", "must not be empty");
  return c;
}

// Loaded on first use (the Inventory constructor makes that happen before threads start).
const Catalogue& catalogue() {
  static const Catalogue c = load_catalogue();
  return c;
}

std::string hex_upper(std::uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llX", digits, static_cast<unsigned long long>(v));
  std::string s(buf);
  return s.substr(s.size() - static_cast<std::size_t>(digits));
}

std::string guid(Rng& r) {
  return "{" + hex_upper(r.next(), 8) + "-" + hex_upper(r.next(), 4) + "-" +
         hex_upper(r.next(), 4) + "-" + hex_upper(r.next(), 4) + "-" + hex_upper(r.next(), 12) +
         "}";
}

std::string perf_instance_name(std::string s) {
  for (auto& c : s) {
    if (c == '(')
      c = '[';
    else if (c == ')')
      c = ']';
    else if (c == '#' || c == '/' || c == '\\')
      c = '_';
  }
  return s;
}

std::string_view exe_of(std::string_view path) {
  // Binary name of a service path: strip quotes and arguments.
  std::string_view p = path;
  if (!p.empty() && p[0] == '"') {
    auto end = p.find('"', 1);
    p = p.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1);
  } else {
    auto sp = p.find(' ');
    if (sp != std::string_view::npos) p = p.substr(0, sp);
  }
  auto slash = p.find_last_of('\\');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

struct SyntheticService {
  std::string name, display, path;
};
// Interned names for services beyond the catalog (config `services:` override).
const SyntheticService& synthetic_service(int i) {
  static const std::vector<SyntheticService> table = [] {
    std::vector<SyntheticService> t;
    for (int k = 0; k <= 2000; ++k) {
      t.push_back({"ContosoAgent" + std::to_string(k), "Contoso Agent " + std::to_string(k),
                   "\"C:\\Program Files\\Contoso\\agent" + std::to_string(k) + ".exe\""});
    }
    return t;
  }();
  return table[static_cast<std::size_t>(std::clamp(i, 0, 2000))];
}

HostModel build_model(const std::string& host, const HostConfig* ov, double now) {
  HostModel m;
  m.host = host;
  m.seed = host_seed(host);
  Rng r(m.seed);
  std::string short_name = host.substr(0, host.find('.'));
  if (short_name.empty()) short_name = "host";
  m.cs_name = short_name.substr(0, 15);
  for (auto& c : m.cs_name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  m.dns_host = short_name;
  m.domain = host.find('.') == std::string::npos ? "WORKGROUP" : host.substr(host.find('.') + 1);

  static constexpr int kCpuChoices[] = {2, 2, 4, 4, 4, 6, 8, 8, 12, 16};
  m.cpus = ov && ov->cpus ? *ov->cpus : kCpuChoices[r.next() % std::size(kCpuChoices)];
  m.sockets = (m.cpus >= 8 && r.chance(0.5)) ? 2 : 1;
  if (m.cpus % m.sockets != 0) m.sockets = 1;
  static constexpr int kMemGiB[] = {4, 8, 8, 16, 16, 32, 64};
  m.mem_bytes = static_cast<std::uint64_t>(kMemGiB[r.next() % std::size(kMemGiB)]) << 30;
  m.mem_bytes -= static_cast<std::uint64_t>(r.range(64, 512)) << 20;  // firmware/reserved
  m.pagefile_bytes = static_cast<std::uint64_t>(r.range(1, 4)) << 30;
  const Catalogue& cat = catalogue();
  m.os = static_cast<int>(r.next() % cat.oses.size());
  // Boot time: 1 hour .. 40 days before the start of the current week, so it is the same
  // for every model built this week (also across sim restarts) and counters keep counting.
  const double week = 7 * 86400.0;
  m.boot_unix =
      std::floor(now / week) * week - std::floor(r.uniform(3600, 40 * 86400)) + r.uniform(0, 1);
  m.install_unix = std::floor(m.boot_unix - r.uniform(30 * 86400, 900 * 86400));
  {
    // Own generator: drawing from r here would change every later field of the model.
    Rng clock_rng(m.seed ^ 0xc10cull);
    m.clock_offset_s = clock_rng.uniform(-2.0, 2.0);
  }
  if (ov && ov->clock_offset_s) m.clock_offset_s = *ov->clock_offset_s;
  m.avail_frac = r.uniform(0.15, 0.7);
  for (int i = 0; i < m.cpus; ++i) {
    m.core_busy.push_back(r.uniform(0.03, 0.55));
    m.core_phase.push_back(r.uniform(0, kTwoPi));
  }
  m.serial_number =
      std::to_string(r.range(10000, 99999)) + "-" + std::to_string(r.range(10000, 99999)) + "-" +
      std::to_string(r.range(10000, 99999)) + "-AA" + std::to_string(r.range(100, 999));
  const CpuInfo& cpu = cat.cpus[r.next() % cat.cpus.size()];
  m.cpu_name = cpu.name;
  m.cpu_mhz = cpu.mhz;
  const Maker& maker = cat.makers[r.next() % cat.makers.size()];
  m.manufacturer = maker.manufacturer;
  m.model_name = maker.model;

  int disks = ov && ov->disks ? *ov->disks : r.range(2, 4);
  for (int i = 0; i < disks; ++i) {
    DiskModel d;
    d.letter = std::string(1, static_cast<char>('C' + i)) + ":";
    d.size_bytes = (i == 0 ? static_cast<std::uint64_t>(r.range(60, 256))
                           : static_cast<std::uint64_t>(r.range(100, 2048)))
                   << 30;
    d.size_bytes -= static_cast<std::uint64_t>(r.range(1, 1000)) << 20;
    d.free_frac = r.uniform(0.05, 0.85);
    d.reads_per_s = r.uniform(1, 200);
    d.writes_per_s = r.uniform(5, 300);
    d.read_bytes_per_op = r.uniform(4096, 65536);
    d.write_bytes_per_op = r.uniform(4096, 32768);
    d.latency_s = r.uniform(0.0005, 0.02);
    d.phase = r.uniform(0, kTwoPi);
    d.serial = hex_upper(r.next(), 8);
    d.volume_name = i == 0 ? "" : (i == 1 ? "Data" : "Data" + std::to_string(i));
    m.disks.push_back(std::move(d));
  }

  int nics = ov && ov->nics ? *ov->nics : r.range(1, 3);
  const NicKind& nic_kind = cat.nics[r.next() % cat.nics.size()];
  for (int i = 0; i < nics; ++i) {
    NicModel n;
    n.description = nic_kind.description;
    if (i > 0) n.description += " #" + std::to_string(i + 1);
    n.perf_name = perf_instance_name(n.description);
    n.service_name = nic_kind.service;
    char mac[32];
    std::uint64_t mv = r.next();
    std::snprintf(mac, sizeof mac, "00:50:56:%02X:%02X:%02X", static_cast<unsigned>(mv & 0xff),
                  static_cast<unsigned>((mv >> 8) & 0xff),
                  static_cast<unsigned>((mv >> 16) & 0xff));
    n.mac = mac;
    n.ipv4 = "10." + std::to_string(r.range(0, 255)) + "." + std::to_string(r.range(0, 255)) + "." +
             std::to_string(r.range(2, 254));
    n.ipv6 = "fe80::" + common::to_lower(hex_upper(r.next(), 4)) + ":" +
             common::to_lower(hex_upper(r.next(), 4)) + ":" +
             common::to_lower(hex_upper(r.next(), 4)) + ":" +
             common::to_lower(hex_upper(r.next(), 4));
    n.gateway = n.ipv4.substr(0, n.ipv4.rfind('.')) + ".1";
    n.guid = guid(r);
    n.bandwidth_bps = nic_kind.mbps * 1000000ull;
    n.rx_bytes_per_s = r.uniform(2e3, 5e6);
    n.tx_bytes_per_s = r.uniform(1e3, 3e6);
    n.phase = r.uniform(0, kTwoPi);
    n.index = 10 + i;
    n.interface_index = 12 + i * 3;
    m.nics.push_back(std::move(n));
  }

  // Processes: the fixed boot set first, then svchosts and applications.
  auto add_proc = [&](std::string_view name, std::string_view path, std::uint32_t ppid, int session,
                      double cpu) {
    ProcessModel p;
    p.name = name;
    p.exe_path = path;
    p.pid = 0;
    p.ppid = ppid;
    p.session = session;
    p.cpu_share = cpu;
    p.working_set = static_cast<std::uint64_t>(r.range(2, 400)) << 20;
    p.private_bytes = p.working_set + (static_cast<std::uint64_t>(r.range(0, 100)) << 20);
    p.virtual_bytes = p.private_bytes + (static_cast<std::uint64_t>(r.range(50, 4000)) << 20);
    p.handles = static_cast<std::uint32_t>(r.range(40, 2000));
    p.threads = static_cast<std::uint32_t>(r.range(1, 60));
    p.priority = 8;
    p.start_offset_s = r.uniform(5, 600);
    p.io_read_bps = r.uniform(0, 20000);
    p.io_write_bps = r.uniform(0, 10000);
    m.processes.push_back(std::move(p));
    return m.processes.size() - 1;
  };
  std::vector<std::uint32_t> used_pids{0, 4};
  auto new_pid = [&]() {
    for (;;) {
      auto pid = static_cast<std::uint32_t>(r.range(20, 16000) * 4);
      if (std::find(used_pids.begin(), used_pids.end(), pid) == used_pids.end()) {
        used_pids.push_back(pid);
        return pid;
      }
    }
  };

  add_proc("System Idle Process", "", 0, 0, 0);
  m.processes.back().pid = 0;
  m.processes.back().threads = static_cast<std::uint32_t>(m.cpus);
  add_proc("System", "", 0, 0, 0.01);
  m.processes.back().pid = 4;
  for (const auto& b : cat.boot_processes) {
    auto idx = add_proc(b.name, "", 4, b.session, r.uniform(0, 0.01));
    m.processes[idx].pid = new_pid();
  }
  const std::uint32_t services_pid = m.processes[7].pid;  // services.exe
  const std::uint32_t lsass_pid = m.processes[8].pid;
  int svchosts = r.range(8, 25);
  std::vector<std::uint32_t> svchost_pids;
  for (int i = 0; i < svchosts; ++i) {
    auto idx = add_proc("svchost.exe", "", services_pid, 0, r.uniform(0, 0.03));
    m.processes[idx].pid = new_pid();
    svchost_pids.push_back(m.processes[idx].pid);
  }

  // Services: the core set plus a seeded sample of the rest, sorted like Windows.
  const int catalog = static_cast<int>(cat.services.size());
  int want_services = ov && ov->services ? *ov->services : r.range(40, 120);
  std::vector<int> pick;
  for (int i = 0; i < std::min(cat.core_services, catalog); ++i) pick.push_back(i);
  std::vector<int> rest;
  for (int i = cat.core_services; i < catalog; ++i) {
    // A host answering WinRM runs WinRM and WMI.
    const std::string_view n = cat.services[static_cast<std::size_t>(i)].name;
    if (n == "WinRM" || n == "Winmgmt" || n == "W32Time")
      pick.push_back(i);
    else
      rest.push_back(i);
  }
  for (std::size_t i = rest.size(); i > 1; --i) std::swap(rest[i - 1], rest[r.next() % i]);
  for (int i : rest) {
    if (static_cast<int>(pick.size()) >= want_services) break;
    pick.push_back(i);
  }
  if (static_cast<int>(pick.size()) > want_services)
    pick.resize(static_cast<std::size_t>(want_services));
  int failing = r.chance(0.3) ? r.range(0, static_cast<int>(pick.size()) - 1) : -1;
  for (std::size_t k = 0; k < pick.size(); ++k) {
    const auto& spec = cat.services[static_cast<std::size_t>(pick[k])];
    ServiceModel s;
    s.catalog = pick[k];
    s.name = spec.name;
    s.display = spec.display;

    s.path = spec.path;
    s.start_mode = spec.start_mode;
    bool running = spec.running;
    if (s.start_mode == "Manual" && r.chance(0.1)) running = !running;
    if (static_cast<int>(k) == failing && s.start_mode == "Auto") running = false;
    s.state = running ? "Running" : "Stopped";
    s.start_name = spec.start_name;
    s.own_process = spec.own_process;
    s.pid = 0;
    if (running) {
      std::string_view exe = exe_of(s.path);
      if (common::to_lower(exe) == "lsass.exe") {
        s.pid = lsass_pid;
      } else if (!s.own_process) {
        s.pid = svchost_pids[r.next() % svchost_pids.size()];
      } else {
        auto idx = add_proc(
            exe,
            s.path.front() == '"' ? s.path.substr(1, s.path.find('"', 1) - 1) : std::string_view{},
            services_pid, 0, r.uniform(0, 0.08));
        m.processes[idx].pid = new_pid();
        s.pid = m.processes[idx].pid;
      }
    }
    m.services.push_back(std::move(s));
  }
  // Synthetic extra services when more are asked for than the catalog holds.
  for (int i = static_cast<int>(m.services.size()); i < want_services; ++i) {
    ServiceModel s;
    s.catalog = -1;
    const auto& syn = synthetic_service(i);
    s.name = syn.name;
    s.display = syn.display;
    s.path = syn.path;
    s.start_mode = r.chance(0.7) ? "Auto" : "Manual";
    s.state = s.start_mode == "Auto" ? "Running" : "Stopped";
    s.start_name = "LocalSystem";
    s.own_process = true;
    s.pid = s.state == "Running" ? new_pid() : 0;
    m.services.push_back(std::move(s));
  }
  std::sort(m.services.begin(), m.services.end(), [](const ServiceModel& a, const ServiceModel& b) {
    return common::to_lower(a.name) < common::to_lower(b.name);
  });

  int want_procs = ov && ov->processes ? *ov->processes : r.range(60, 150);
  const auto& apps = cat.app_processes;
  while (static_cast<int>(m.processes.size()) < want_procs) {
    std::string_view name = r.chance(0.3) ? std::string_view("svchost.exe")
                                          : std::string_view(apps[r.next() % apps.size()]);
    std::uint32_t ppid =
        name == "svchost.exe"
            ? services_pid
            : m.processes[r.range(2, static_cast<int>(m.processes.size()) - 1)].pid;
    auto idx =
        add_proc(name, "", ppid, name == "svchost.exe" ? 0 : r.range(0, 2), r.uniform(0, 0.05));
    m.processes[idx].pid = new_pid();
  }
  if (static_cast<int>(m.processes.size()) > want_procs)
    m.processes.resize(static_cast<std::size_t>(std::max(want_procs, 2)));
  // Windows lists processes roughly in creation order; keep Idle/System first.
  return m;
}

// ---------------------------------------------------------------------------
// Classes
// ---------------------------------------------------------------------------

class Builder {
 public:
  Builder(const ClassDef& cls, std::vector<Instance>& out) : cls_(cls), out_(out) {}
  Builder& begin() {
    out_.emplace_back();
    out_.back().values.resize(cls_.properties.size());
    return *this;
  }
  Builder& set(std::string_view name, Value v) {
    int i = cls_.exact(name);
    if (i < 0)
      throw std::logic_error("sim: " + cls_.name + " has no property " + std::string(name));
    out_.back().values[static_cast<std::size_t>(i)] = std::move(v);
    return *this;
  }
  Builder& str(std::string_view name, std::string v) { return set(name, Value::str(std::move(v))); }
  Builder& num(std::string_view name, std::uint64_t v) { return set(name, Value::num(v)); }
  Builder& boolean(std::string_view name, bool v) { return set(name, Value::boolean(v)); }

 private:
  const ClassDef& cls_;
  std::vector<Instance>& out_;
};

const ClassDef& cls(std::string_view name);

// Shared perf-class fields.
struct PerfClock {
  double t;  // seconds since boot
  std::uint64_t sys100ns, perf_time;
};
PerfClock perf_clock(const HostModel& m, double now) {
  double t = std::max(0.0, now - m.boot_unix);
  return {t, filetime(now), static_cast<std::uint64_t>(t * 1e7)};
}
void perf_common(Builder& b, const PerfClock& c) {
  b.num("Frequency_Object", 0)
      .num("Frequency_PerfTime", 10000000)
      .num("Frequency_Sys100NS", 10000000)
      .num("Timestamp_Object", 0)
      .num("Timestamp_PerfTime", c.perf_time)
      .num("Timestamp_Sys100NS", c.sys100ns);
}

std::uint64_t kb(std::uint64_t bytes) { return bytes / 1024; }

double free_phys_bytes(const HostModel& m, double t) {
  return static_cast<double>(m.mem_bytes) *
         std::clamp(gauge(t, m.avail_frac, 0.15, 1800, m.core_phase[0]), 0.02, 0.98);
}

void gen_os(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_OperatingSystem"), out);
  const auto& os = catalogue().oses[static_cast<std::size_t>(m.os)];
  const double t = now - m.boot_unix;
  const std::uint64_t total_kb = kb(m.mem_bytes);
  const std::uint64_t free_kb = kb(u64(free_phys_bytes(m, t)));
  const std::uint64_t page_kb = kb(m.pagefile_bytes);
  const std::uint64_t page_free_kb =
      page_kb - std::min<std::uint64_t>(page_kb, page_kb / 20 + kb(m.mem_bytes) / 50);
  b.begin()
      .str("BootDevice", "\\Device\\HarddiskVolume1")
      .str("BuildNumber", os.build)
      .str("BuildType", "Multiprocessor Free")
      .str("Caption", os.caption)
      .str("CodeSet", "1252")
      .str("CountryCode", "1")
      .str("CreationClassName", "Win32_OperatingSystem")
      .str("CSCreationClassName", "Win32_ComputerSystem")
      .str("CSName", m.cs_name)
      .set("CurrentTimeZone", Value::snum(0))
      .boolean("DataExecutionPrevention_32BitApplications", true)
      .boolean("DataExecutionPrevention_Available", true)
      .boolean("DataExecutionPrevention_Drivers", true)
      .num("DataExecutionPrevention_SupportPolicy", 3)
      .boolean("Debug", false)
      .str("Description", "")
      .boolean("Distributed", false)
      .num("EncryptionLevel", 256)
      .num("ForegroundApplicationBoost", 2)
      .num("FreePhysicalMemory", free_kb)
      .num("FreeSpaceInPagingFiles", page_free_kb)
      .num("FreeVirtualMemory", free_kb + page_free_kb)
      .set("InstallDate", Value::datetime(xs_datetime(m.install_unix, false)))
      .set("LastBootUpTime", Value::datetime(xs_datetime(m.boot_unix)))
      .set("LocalDateTime", Value::datetime(xs_datetime(now + m.clock_offset_s, false)))
      .str("Locale", "0409")
      .str("Manufacturer", "Microsoft Corporation")
      .num("MaxNumberOfProcesses", 4294967295u)
      .num("MaxProcessMemorySize", 137438953344ull)
      .set("MUILanguages", Value::str_array({"en-US"}))
      .str("Name", std::string(os.caption) + "|C:\\Windows|\\Device\\Harddisk0\\Partition2")
      .num("NumberOfLicensedUsers", 0)
      .num("NumberOfProcesses", m.processes.size())
      .num("NumberOfUsers", 1 + m.seed % 3)
      .num("OperatingSystemSKU", static_cast<std::uint64_t>(os.sku))
      .str("Organization", "")
      .str("OSArchitecture", "64-bit")
      .num("OSLanguage", 1033)
      .num("OSProductSuite", 272)
      .num("OSType", 18)
      .boolean("PortableOperatingSystem", false)
      .boolean("Primary", true)
      .num("ProductType", 3)
      .str("RegisteredUser", "Windows User")
      .str("SerialNumber", m.serial_number)
      .num("ServicePackMajorVersion", 0)
      .num("ServicePackMinorVersion", 0)
      .num("SizeStoredInPagingFiles", page_kb)
      .str("Status", "OK")
      .num("SuiteMask", 272)
      .str("SystemDevice", "\\Device\\HarddiskVolume2")
      .str("SystemDirectory", "C:\\Windows\\system32")
      .str("SystemDrive", "C:")
      .num("TotalVirtualMemorySize", total_kb + page_kb)
      .num("TotalVisibleMemorySize", total_kb)
      .str("Version", os.version)
      .str("WindowsDirectory", "C:\\Windows");
}

void gen_cs(const HostModel& m, double, std::vector<Instance>& out) {
  Builder b(cls("Win32_ComputerSystem"), out);
  const bool in_domain = m.domain != "WORKGROUP";
  b.begin()
      .num("AdminPasswordStatus", 3)
      .boolean("AutomaticManagedPagefile", true)
      .boolean("AutomaticResetBootOption", true)
      .boolean("AutomaticResetCapability", true)
      .boolean("BootROMSupported", true)
      .str("BootupState", "Normal boot")
      .str("Caption", m.cs_name)
      .num("ChassisBootupState", 3)
      .str("CreationClassName", "Win32_ComputerSystem")
      .set("CurrentTimeZone", Value::snum(0))
      .boolean("DaylightInEffect", false)
      .str("Description", "AT/AT COMPATIBLE")
      .str("DNSHostName", m.dns_host)
      .str("Domain", m.domain)
      .num("DomainRole", in_domain ? 3 : 2)
      .boolean("EnableDaylightSavingsTime", true)
      .num("FrontPanelResetStatus", 3)
      .boolean("HypervisorPresent",
               m.manufacturer.starts_with("VMware") || m.manufacturer.starts_with("Microsoft"))
      .boolean("InfraredSupported", false)
      .num("KeyboardPasswordStatus", 3)
      .str("Manufacturer", m.manufacturer)
      .str("Model", m.model_name)
      .str("Name", m.cs_name)
      .boolean("NetworkServerModeEnabled", true)
      .num("NumberOfLogicalProcessors", static_cast<std::uint64_t>(m.cpus))
      .num("NumberOfProcessors", static_cast<std::uint64_t>(m.sockets))
      .boolean("PartOfDomain", in_domain)
      .set("PauseAfterReset", Value::snum(-1))
      .num("PCSystemType", 1)
      .num("PowerOnPasswordStatus", 3)
      .num("PowerState", 0)
      .num("PowerSupplyState", 3)
      .str("PrimaryOwnerName", "Windows User")
      .num("ResetCapability", 1)
      .set("ResetCount", Value::snum(-1))
      .set("ResetLimit", Value::snum(-1))
      .set("Roles", Value::str_array({"LM_Workstation", "LM_Server", "NT", "Server_NT"}))
      .str("Status", "OK")
      .str("SystemType", "x64-based PC")
      .num("ThermalState", 3)
      .num("TotalPhysicalMemory", m.mem_bytes)
      .num("WakeUpType", 6)
      .str("Workgroup", in_domain ? "" : "WORKGROUP");
  if (in_domain)
    out.back().values[static_cast<std::size_t>(cls("Win32_ComputerSystem").exact("Workgroup"))] =
        Value::null();
}

void gen_processor(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_Processor"), out);
  const double t = now - m.boot_unix;
  const int per_socket = m.cpus / m.sockets;
  for (int s = 0; s < m.sockets; ++s) {
    double load = 0;
    for (int c = 0; c < per_socket; ++c) {
      auto i = static_cast<std::size_t>(s * per_socket + c);
      load += std::min(0.95, gauge(t, m.core_busy[i], 0.5, 300, m.core_phase[i]));
    }
    b.begin()
        .num("AddressWidth", 64)
        .num("Architecture", 9)
        .num("Availability", 3)
        .str("Caption", "Intel64 Family 6 Model 85 Stepping 7")
        .num("CpuStatus", 1)
        .str("CreationClassName", "Win32_Processor")
        .num("CurrentClockSpeed", static_cast<std::uint64_t>(m.cpu_mhz))
        .num("DataWidth", 64)
        .str("Description", "Intel64 Family 6 Model 85 Stepping 7")
        .str("DeviceID", "CPU" + std::to_string(s))
        .num("Family", 179)
        .num("L2CacheSize", 1024u * static_cast<unsigned>(per_socket))
        .num("L3CacheSize", 36608)
        .num("L3CacheSpeed", 0)
        .num("Level", 6)
        .num("LoadPercentage", u64(100 * load / per_socket))
        .str("Manufacturer", m.cpu_name.starts_with("AMD") ? "AuthenticAMD" : "GenuineIntel")
        .num("MaxClockSpeed", static_cast<std::uint64_t>(m.cpu_mhz))
        .str("Name", m.cpu_name)
        .num("NumberOfCores", static_cast<std::uint64_t>(per_socket))
        .num("NumberOfEnabledCore", static_cast<std::uint64_t>(per_socket))
        .num("NumberOfLogicalProcessors", static_cast<std::uint64_t>(per_socket))
        .boolean("PowerManagementSupported", false)
        .str("ProcessorId", "0F8BFBFF00050657")
        .num("ProcessorType", 3)
        .num("Revision", 21767)
        .str("Role", "CPU")
        .boolean("SecondLevelAddressTranslationExtensions", false)
        .str("SocketDesignation", "CPU " + std::to_string(s + 1))
        .str("Status", "OK")
        .num("StatusInfo", 3)
        .str("SystemCreationClassName", "Win32_ComputerSystem")
        .str("SystemName", m.cs_name)
        .num("ThreadCount", static_cast<std::uint64_t>(per_socket))
        .num("UpgradeMethod", 1)
        .str("Version", "")
        .boolean("VirtualizationFirmwareEnabled", false)
        .boolean("VMMonitorModeExtensions", false)
        .num("VoltageCaps", 0);
  }
}

struct CoreTimes {
  double busy, user, priv, interrupt, dpc, idle, c1, c2, c3, interrupts, dpcs;
};
CoreTimes core_times(const HostModel& m, std::size_t i, double t) {
  CoreTimes c{};
  const double elapsed = t * 1e7;
  c.busy = wave_integral(t, m.core_busy[i], 0.5, 300, m.core_phase[i]) * 1e7;
  c.user = c.busy * 0.7;
  c.priv = c.busy - c.user;
  c.interrupt = c.priv * 0.06;
  c.dpc = c.priv * 0.04;
  c.idle = elapsed - c.busy;
  c.c1 = c.idle * 0.6;
  c.c2 = c.idle * 0.3;
  c.c3 = c.idle * 0.1;
  c.interrupts = wave_integral(t, 800 + 3000 * m.core_busy[i], 0.3, 120, m.core_phase[i]);
  c.dpcs = wave_integral(t, 50 + 400 * m.core_busy[i], 0.3, 120, m.core_phase[i]);
  return c;
}

void gen_perf_processor(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_PerfOS_Processor"), out);
  const auto clock = perf_clock(m, now);
  CoreTimes total{};
  auto emit = [&](const std::string& name, const CoreTimes& c) {
    b.begin()
        .num("C1TransitionsPersec", u64(c.interrupts * 0.9))
        .num("C2TransitionsPersec", u64(c.interrupts * 0.2))
        .num("C3TransitionsPersec", 0)
        .num("DPCRate", 1)
        .num("DPCsQueuedPersec", u64(c.dpcs))
        .num("InterruptsPersec", u64(c.interrupts))
        .str("Name", name)
        .num("PercentC1Time", u64(c.c1))
        .num("PercentC2Time", u64(c.c2))
        .num("PercentC3Time", u64(c.c3))
        .num("PercentDPCTime", u64(c.dpc))
        .num("PercentIdleTime", u64(c.idle))
        .num("PercentInterruptTime", u64(c.interrupt))
        .num("PercentPrivilegedTime", u64(c.priv))
        // PERF_100NSEC_TIMER_INV: the raw value is the idle time, as on Windows.
        .num("PercentProcessorTime", u64(c.idle))
        .num("PercentUserTime", u64(c.user));
    perf_common(b, clock);
  };
  for (std::size_t i = 0; i < m.core_busy.size(); ++i) {
    CoreTimes c = core_times(m, i, clock.t);
    emit(std::to_string(i), c);
    total.busy += c.busy, total.user += c.user, total.priv += c.priv,
        total.interrupt += c.interrupt;
    total.dpc += c.dpc, total.idle += c.idle, total.c1 += c.c1, total.c2 += c.c2, total.c3 += c.c3;
    total.interrupts += c.interrupts, total.dpcs += c.dpcs;
  }
  // _Total time counters are per-processor averages; event counts are sums.
  const double n = static_cast<double>(m.core_busy.size());
  CoreTimes avg = total;
  for (double* v : {&avg.busy, &avg.user, &avg.priv, &avg.interrupt, &avg.dpc, &avg.idle, &avg.c1,
                    &avg.c2, &avg.c3})
    *v /= n;
  emit("_Total", avg);
}

// "Processor Information" (Server 2008 R2+): instances "<socket>,<core>", one
// "<socket>,_Total" per socket and "_Total", as windows_exporter's cpu collector sees them.
void gen_perf_procinfo(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_Counters_ProcessorInformation"), out);
  const auto clock = perf_clock(m, now);
  const double t = clock.t;
  const double elapsed = t * 1e7;
  // Utility/performance bases tick at 100 ns like the time counters; 32-bit on Windows.
  const auto wrap32 = [](double v) { return u64(v) & 0xffffffffull; };
  auto emit = [&](const std::string& name, const CoreTimes& c, double parked) {
    b.begin()
        .num("AverageIdleTime", u64(c.idle / 1e4))
        .num("AverageIdleTime_Base", u64(c.interrupts))
        .num("C1TransitionsPersec", u64(c.interrupts * 0.9))
        .num("C2TransitionsPersec", u64(c.interrupts * 0.2))
        .num("C3TransitionsPersec", 0)
        .num("ClockInterruptsPersec", u64(t * 64))
        .num("DPCRate", 1)
        .num("DPCsQueuedPersec", u64(c.dpcs))
        .num("IdleBreakEventsPersec", u64(c.interrupts * 1.1))
        .num("InterruptsPersec", u64(c.interrupts))
        .str("Name", name)
        .num("ParkingStatus", u64(parked))
        .num("PercentC1Time", u64(c.c1))
        .num("PercentC2Time", u64(c.c2))
        .num("PercentC3Time", u64(c.c3))
        .num("PercentDPCTime", u64(c.dpc))
        .num("PercentIdleTime", u64(c.idle))
        .num("PercentInterruptTime", u64(c.interrupt))
        .num("PercentofMaximumFrequency", 100)
        .num("PercentPerformanceLimit", 0)
        .num("PercentPriorityTime", u64(c.busy * 0.9))
        .num("PercentPrivilegedTime", u64(c.priv))
        .num("PercentPrivilegedUtility", wrap32(c.priv * 1.05))
        .num("PercentPrivilegedUtility_Base", wrap32(elapsed / 1e2))
        .num("PercentProcessorPerformance", wrap32(elapsed * 1.05 / 1e2))
        .num("PercentProcessorPerformance_Base", wrap32(elapsed / 1e4))
        .num("PercentProcessorTime", u64(c.idle))
        .num("PercentProcessorUtility", wrap32(c.busy * 1.05))
        .num("PercentProcessorUtility_Base", wrap32(elapsed / 1e2))
        .num("PercentUserTime", u64(c.user))
        .num("PerformanceLimitFlags", 0)
        .num("ProcessorFrequency", static_cast<std::uint64_t>(m.cpu_mhz))
        .num("ProcessorStateFlags", 0);
    perf_common(b, clock);
  };
  const std::size_t per_socket = m.core_busy.size() / static_cast<std::size_t>(m.sockets);
  CoreTimes total{};
  for (int s = 0; s < m.sockets; ++s) {
    CoreTimes socket{};
    for (std::size_t c = 0; c < per_socket; ++c) {
      const std::size_t i = static_cast<std::size_t>(s) * per_socket + c;
      const CoreTimes ct = core_times(m, i, t);
      emit(std::to_string(s) + "," + std::to_string(c), ct, 0);
      for (auto [sum, v] : {std::pair{&socket.busy, ct.busy}, {&socket.user, ct.user},
                            {&socket.priv, ct.priv}, {&socket.interrupt, ct.interrupt},
                            {&socket.dpc, ct.dpc}, {&socket.idle, ct.idle}, {&socket.c1, ct.c1},
                            {&socket.c2, ct.c2}, {&socket.c3, ct.c3},
                            {&socket.interrupts, ct.interrupts}, {&socket.dpcs, ct.dpcs}})
        *sum += v;
    }
    for (auto [sum, v] : {std::pair{&total.busy, socket.busy}, {&total.user, socket.user},
                          {&total.priv, socket.priv}, {&total.interrupt, socket.interrupt},
                          {&total.dpc, socket.dpc}, {&total.idle, socket.idle},
                          {&total.c1, socket.c1}, {&total.c2, socket.c2}, {&total.c3, socket.c3},
                          {&total.interrupts, socket.interrupts}, {&total.dpcs, socket.dpcs}})
      *sum += v;
    CoreTimes avg = socket;
    for (double* v : {&avg.busy, &avg.user, &avg.priv, &avg.interrupt, &avg.dpc, &avg.idle,
                      &avg.c1, &avg.c2, &avg.c3})
      *v /= static_cast<double>(per_socket);
    emit(std::to_string(s) + ",_Total", avg, 0);
  }
  for (double* v : {&total.busy, &total.user, &total.priv, &total.interrupt, &total.dpc,
                    &total.idle, &total.c1, &total.c2, &total.c3})
    *v /= static_cast<double>(m.core_busy.size());
  emit("_Total", total, 0);
}

void gen_perf_memory(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_PerfOS_Memory"), out);
  const auto c = perf_clock(m, now);
  const double t = c.t;
  const double avail = free_phys_bytes(m, t);
  const double used = static_cast<double>(m.mem_bytes) - avail;
  const double committed = used * 1.15;
  const double commit_limit = static_cast<double>(m.mem_bytes + m.pagefile_bytes);
  const double ph = m.core_phase[0];
  b.begin()
      .num("AvailableBytes", u64(avail))
      .num("AvailableKBytes", u64(avail / 1024))
      .num("AvailableMBytes", u64(avail / 1048576))
      .num("CacheBytes", u64(used * 0.08))
      .num("CacheBytesPeak", u64(used * 0.12))
      .num("CacheFaultsPersec", u64(wave_integral(t, 300, 0.5, 600, ph)))
      .num("CommitLimit", u64(commit_limit))
      .num("CommittedBytes", u64(committed))
      .num("DemandZeroFaultsPersec", u64(wave_integral(t, 900, 0.5, 600, ph)))
      .num("FreeAndZeroPageListBytes", u64(avail * 0.3))
      .num("FreeSystemPageTableEntries", 16777215)
      .num("ModifiedPageListBytes", u64(used * 0.01))
      .num("PageFaultsPersec", u64(wave_integral(t, 2500, 0.5, 600, ph)))
      .num("PageReadsPersec", u64(wave_integral(t, 8, 0.9, 900, ph)))
      .num("PagesInputPersec", u64(wave_integral(t, 20, 0.9, 900, ph)))
      .num("PagesOutputPersec", u64(wave_integral(t, 2, 0.9, 900, ph)))
      .num("PagesPersec",
           u64(wave_integral(t, 20, 0.9, 900, ph)) + u64(wave_integral(t, 2, 0.9, 900, ph)))
      .num("PageWritesPersec", u64(wave_integral(t, 1, 0.9, 900, ph)))
      .num("PercentCommittedBytesInUse", u64(committed / 1024))
      .num("PercentCommittedBytesInUse_Base", u64(commit_limit / 1024))
      .num("PoolNonpagedAllocs", 200000 + m.seed % 100000)
      .num("PoolNonpagedBytes", u64(static_cast<double>(m.mem_bytes) * 0.01))
      .num("PoolPagedAllocs", 300000 + m.seed % 100000)
      .num("PoolPagedBytes", u64(static_cast<double>(m.mem_bytes) * 0.02))
      .num("PoolPagedResidentBytes", u64(static_cast<double>(m.mem_bytes) * 0.018))
      .num("StandbyCacheCoreBytes", u64(avail * 0.05))
      .num("StandbyCacheNormalPriorityBytes", u64(avail * 0.4))
      .num("StandbyCacheReserveBytes", u64(avail * 0.25))
      .num("SystemCacheResidentBytes", u64(used * 0.05))
      .num("SystemCodeResidentBytes", 0)
      .num("SystemCodeTotalBytes", 0)
      .num("SystemDriverResidentBytes", 20 << 20)
      .num("SystemDriverTotalBytes", 40 << 20)
      .num("TransitionFaultsPersec", u64(wave_integral(t, 500, 0.5, 600, ph)))
      .num("TransitionPagesRePurposedPersec", u64(wave_integral(t, 10, 0.5, 600, ph)))
      .num("WriteCopiesPersec", u64(wave_integral(t, 15, 0.5, 600, ph)));
  perf_common(b, c);
}

std::uint64_t total_threads(const HostModel& m) {
  std::uint64_t n = 0;
  for (const auto& p : m.processes) n += p.threads;
  return n;
}

void gen_perf_system(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_PerfOS_System"), out);
  const auto c = perf_clock(m, now);
  const double t = c.t;
  const double ph = m.core_phase[0];
  const double cpus = m.cpus;
  b.begin()
      .num("AlignmentFixupsPersec", 0)
      .num("ContextSwitchesPersec", u64(wave_integral(t, 3000 * cpus, 0.4, 300, ph)))
      .num("ExceptionDispatchesPersec", u64(wave_integral(t, 5, 0.5, 300, ph)))
      .num("FileControlBytesPersec", u64(wave_integral(t, 20000, 0.5, 300, ph)))
      .num("FileControlOperationsPersec", u64(wave_integral(t, 400, 0.5, 300, ph)))
      .num("FileDataOperationsPersec", u64(wave_integral(t, 150, 0.5, 300, ph)))
      .num("FileReadBytesPersec", u64(wave_integral(t, 300000, 0.5, 300, ph)))
      .num("FileReadOperationsPersec", u64(wave_integral(t, 100, 0.5, 300, ph)))
      .num("FileWriteBytesPersec", u64(wave_integral(t, 80000, 0.5, 300, ph)))
      .num("FileWriteOperationsPersec", u64(wave_integral(t, 50, 0.5, 300, ph)))
      .num("FloatingEmulationsPersec", 0)
      .num("PercentRegistryQuotaInUse", 60000000 + m.seed % 10000000)
      .num("PercentRegistryQuotaInUse_Base", 4294967295u)
      .num("Processes", m.processes.size())
      .num("ProcessorQueueLength", u64(std::max(0.0, gauge(t, 1.0, 1.0, 97, ph))))
      .num("SystemCallsPersec", u64(wave_integral(t, 20000 * cpus, 0.4, 300, ph)))
      .num("SystemUpTime", filetime(m.boot_unix))
      .num("Threads", total_threads(m));
  perf_common(b, c);
  // The System object's own timer runs in 100ns FILETIME units.
  auto& v = out.back().values;
  const auto& d = cls("Win32_PerfRawData_PerfOS_System");
  v[static_cast<std::size_t>(d.exact("Frequency_Object"))] = Value::num(10000000);
  v[static_cast<std::size_t>(d.exact("Timestamp_Object"))] = Value::num(c.sys100ns);
}

struct DiskCounters {
  double reads, writes, read_bytes, write_bytes, read_time, write_time, queue, split, free_mb,
      total_mb, idle;
};
DiskCounters disk_counters(const DiskModel& d, double t) {
  DiskCounters c{};
  c.reads = wave_integral(t, d.reads_per_s, 0.6, 450, d.phase);
  c.writes = wave_integral(t, d.writes_per_s, 0.6, 450, d.phase + 1);
  c.read_bytes = c.reads * d.read_bytes_per_op;
  c.write_bytes = c.writes * d.write_bytes_per_op;
  c.read_time = c.reads * d.latency_s * 1e7;
  c.write_time = c.writes * d.latency_s * 1.3 * 1e7;
  c.queue = (c.read_time + c.write_time);  // 100ns-queue-length integral
  // Read+write time may exceed wall time (queue depth > 1), so idle time cannot be
  // "elapsed - busy": use the disk's mean utilisation, which keeps it a monotonic counter.
  const double utilisation =
      std::clamp((d.reads_per_s + d.writes_per_s * 1.3) * d.latency_s, 0.02, 0.9);
  c.idle = t * 1e7 * (1 - utilisation);
  c.split = c.reads * 0.001;
  c.total_mb = static_cast<double>(d.size_bytes) / 1048576;
  return c;
}

double disk_free_bytes(const DiskModel& d, double t) {
  return static_cast<double>(d.size_bytes) *
         std::clamp(gauge(t, d.free_frac, 0.01, 86400, d.phase), 0.0, 1.0);
}

void emit_disk_perf(Builder& b, const std::string& name, const DiskCounters& c,
                    const PerfClock& clock, bool logical) {
  b.begin()
      .num("AvgDiskBytesPerRead", u64(c.read_bytes))
      .num("AvgDiskBytesPerRead_Base", u64(c.reads))
      .num("AvgDiskBytesPerTransfer", u64(c.read_bytes + c.write_bytes))
      .num("AvgDiskBytesPerTransfer_Base", u64(c.reads + c.writes))
      .num("AvgDiskBytesPerWrite", u64(c.write_bytes))
      .num("AvgDiskBytesPerWrite_Base", u64(c.writes))
      .num("AvgDiskQueueLength", u64(c.queue))
      .num("AvgDiskReadQueueLength", u64(c.read_time))
      .num("AvgDisksecPerRead", u64(c.read_time))
      .num("AvgDisksecPerRead_Base", u64(c.reads))
      .num("AvgDisksecPerTransfer", u64(c.read_time + c.write_time))
      .num("AvgDisksecPerTransfer_Base", u64(c.reads + c.writes))
      .num("AvgDisksecPerWrite", u64(c.write_time))
      .num("AvgDisksecPerWrite_Base", u64(c.writes))
      .num("AvgDiskWriteQueueLength", u64(c.write_time))
      .num("CurrentDiskQueueLength",
           static_cast<std::uint64_t>(clock.sys100ns / 10000000 % 3 == 0 ? 1 : 0))
      .num("DiskBytesPersec", u64(c.read_bytes + c.write_bytes))
      .num("DiskReadBytesPersec", u64(c.read_bytes))
      .num("DiskReadsPersec", u64(c.reads))
      .num("DiskTransfersPersec", u64(c.reads + c.writes))
      .num("DiskWriteBytesPersec", u64(c.write_bytes))
      .num("DiskWritesPersec", u64(c.writes))
      .str("Name", name)
      .num("PercentDiskReadTime", u64(c.read_time))
      .num("PercentDiskReadTime_Base", clock.sys100ns)
      .num("PercentDiskTime", u64(c.read_time + c.write_time))
      .num("PercentDiskTime_Base", clock.sys100ns)
      .num("PercentDiskWriteTime", u64(c.write_time))
      .num("PercentDiskWriteTime_Base", clock.sys100ns)
      .num("PercentIdleTime", u64(c.idle))
      .num("PercentIdleTime_Base", clock.sys100ns)
      .num("SplitIOPerSec", u64(c.split));
  if (logical) {
    b.num("FreeMegabytes", u64(c.free_mb))
        .num("PercentFreeSpace", u64(c.free_mb))
        .num("PercentFreeSpace_Base", u64(c.total_mb));
  }
  perf_common(b, clock);
}

void gen_perf_disk(const HostModel& m, double now, std::vector<Instance>& out, bool logical) {
  Builder b(cls(logical ? "Win32_PerfRawData_PerfDisk_LogicalDisk"
                        : "Win32_PerfRawData_PerfDisk_PhysicalDisk"),
            out);
  const auto clock = perf_clock(m, now);
  DiskCounters total{};
  for (std::size_t i = 0; i < m.disks.size(); ++i) {
    const auto& d = m.disks[i];
    DiskCounters c = disk_counters(d, clock.t);
    c.free_mb = disk_free_bytes(d, clock.t) / 1048576;
    emit_disk_perf(b, logical ? d.letter : std::to_string(i) + " " + d.letter, c, clock, logical);
    total.reads += c.reads, total.writes += c.writes, total.read_bytes += c.read_bytes;
    total.write_bytes += c.write_bytes, total.read_time += c.read_time,
        total.write_time += c.write_time;
    total.queue += c.queue, total.split += c.split, total.free_mb += c.free_mb,
        total.total_mb += c.total_mb, total.idle += c.idle;
  }
  emit_disk_perf(b, "_Total", total, clock, logical);
}
void gen_perf_logicaldisk(const HostModel& m, double now, std::vector<Instance>& out) {
  gen_perf_disk(m, now, out, true);
}
void gen_perf_physicaldisk(const HostModel& m, double now, std::vector<Instance>& out) {
  gen_perf_disk(m, now, out, false);
}

void gen_logicaldisk(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_LogicalDisk"), out);
  const double t = now - m.boot_unix;
  for (const auto& d : m.disks) {
    b.begin()
        .num("Access", 0)
        .str("Caption", d.letter)
        .boolean("Compressed", false)
        .str("CreationClassName", "Win32_LogicalDisk")
        .str("Description", "Local Fixed Disk")
        .str("DeviceID", d.letter)
        .num("DriveType", 3)
        .str("FileSystem", "NTFS")
        .num("FreeSpace", u64(disk_free_bytes(d, t)))
        .num("MaximumComponentLength", 255)
        .num("MediaType", 12)
        .str("Name", d.letter)
        .boolean("QuotasDisabled", true)
        .boolean("QuotasIncomplete", false)
        .boolean("QuotasRebuilding", false)
        .num("Size", d.size_bytes)
        .boolean("SupportsDiskQuotas", true)
        .boolean("SupportsFileBasedCompression", true)
        .str("SystemCreationClassName", "Win32_ComputerSystem")
        .str("SystemName", m.cs_name)
        .boolean("VolumeDirty", false)
        .str("VolumeName", d.volume_name)
        .str("VolumeSerialNumber", d.serial);
  }
}

void gen_perf_nic(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_Tcpip_NetworkInterface"), out);
  const auto clock = perf_clock(m, now);
  const double t = clock.t;
  for (const auto& n : m.nics) {
    const double rx = wave_integral(t, n.rx_bytes_per_s, 0.7, 240, n.phase);
    const double tx = wave_integral(t, n.tx_bytes_per_s, 0.7, 240, n.phase + 2);
    const double rx_pk = rx / 900, tx_pk = tx / 700;
    const double rx_nu = rx_pk * 0.02, tx_nu = tx_pk * 0.01;
    b.begin()
        .num("BytesReceivedPersec", u64(rx))
        .num("BytesSentPersec", u64(tx))
        .num("BytesTotalPersec", u64(rx) + u64(tx))
        .num("CurrentBandwidth", n.bandwidth_bps)
        .str("Name", n.perf_name)
        .num("OffloadedConnections", 0)
        .num("OutputQueueLength", 0)
        .num("PacketsOutboundDiscarded", 0)
        .num("PacketsOutboundErrors", 0)
        .num("PacketsPersec", u64(rx_pk) + u64(tx_pk))
        .num("PacketsReceivedDiscarded", u64(rx_pk * 1e-5))
        .num("PacketsReceivedErrors", 0)
        .num("PacketsReceivedNonUnicastPersec", u64(rx_nu))
        .num("PacketsReceivedPersec", u64(rx_pk))
        .num("PacketsReceivedUnicastPersec", u64(rx_pk) - u64(rx_nu))
        .num("PacketsReceivedUnknown", u64(rx_pk * 1e-6))
        .num("PacketsSentNonUnicastPersec", u64(tx_nu))
        .num("PacketsSentPersec", u64(tx_pk))
        .num("PacketsSentUnicastPersec", u64(tx_pk) - u64(tx_nu))
        .num("TCPActiveRSCConnections", 0)
        .num("TCPRSCAveragePacketSize", 0)
        .num("TCPRSCCoalescedPacketsPersec", 0)
        .num("TCPRSCExceptionsPersec", 0);
    perf_common(b, clock);
  }
}

void gen_nicconfig(const HostModel& m, double, std::vector<Instance>& out) {
  Builder b(cls("Win32_NetworkAdapterConfiguration"), out);
  Rng r(m.seed ^ 0x5eedull);
  int index = 0;
  for (const auto& mp : catalogue().miniports) {
    char cap[16];
    std::snprintf(cap, sizeof cap, "[%08d] ", index);
    b.begin()
        .str("Caption", std::string(cap) + mp.description)
        .str("Description", mp.description)
        .boolean("DHCPEnabled", false)
        .num("Index", static_cast<std::uint64_t>(index))
        .num("InterfaceIndex", static_cast<std::uint64_t>(index + 2))
        .boolean("IPEnabled", false)
        .str("ServiceName", mp.service)
        .str("SettingID", guid(r));
    ++index;
  }
  for (const auto& n : m.nics) {
    char cap[16];
    std::snprintf(cap, sizeof cap, "[%08d] ", n.index);
    const bool dhcp = (m.seed & 1) != 0;
    b.begin()
        .str("Caption", std::string(cap) + n.description)
        .str("DatabasePath", "%SystemRoot%\\System32\\drivers\\etc")
        .set("DefaultIPGateway", Value::str_array({n.gateway}))
        .str("Description", n.description)
        .boolean("DHCPEnabled", dhcp)
        .str("DNSHostName", m.dns_host)
        .set("DNSServerSearchOrder", Value::str_array({n.gateway, "10.0.0.53"}))
        .set("DNSDomainSuffixSearchOrder",
             m.domain == "WORKGROUP" ? Value::null() : Value::str_array({m.domain}))
        .boolean("DomainDNSRegistrationEnabled", false)
        .boolean("FullDNSRegistrationEnabled", true)
        .num("Index", static_cast<std::uint64_t>(n.index))
        .num("InterfaceIndex", static_cast<std::uint64_t>(n.interface_index))
        .set("IPAddress", Value::str_array({n.ipv4, n.ipv6}))
        .num("IPConnectionMetric", 15)
        .boolean("IPEnabled", true)
        .boolean("IPFilterSecurityEnabled", false)
        .set("IPSubnet", Value::str_array({"255.255.255.0", "64"}))
        .str("MACAddress", n.mac)
        .str("ServiceName", n.service_name)
        .str("SettingID", n.guid)
        .num("TcpipNetbiosOptions", 0)
        .boolean("WINSEnableLMHostsLookup", true)
        .str("WINSScopeID", "");
  }
}

void gen_service(const HostModel& m, double, std::vector<Instance>& out) {
  Builder b(cls("Win32_Service"), out);
  for (const auto& s : m.services) {
    const bool running = s.state == "Running";
    b.begin()
        .boolean("AcceptPause", false)
        .boolean("AcceptStop", running)
        .str("Caption", std::string(s.display))
        .num("CheckPoint", 0)
        .str("CreationClassName", "Win32_Service")
        .boolean("DelayedAutoStart", false)
        .str("Description", s.catalog < 0 ? std::string("Contoso line-of-business agent.")
                                          : "Provides " + std::string(s.display) + ".")
        .boolean("DesktopInteract", false)
        .str("DisplayName", std::string(s.display))
        .str("ErrorControl", "Normal")
        .num("ExitCode", running ? 0 : 1077)
        .str("Name", std::string(s.name))
        .str("PathName", std::string(s.path))
        .num("ProcessId", s.pid)
        .num("ServiceSpecificExitCode", 0)
        .str("ServiceType", s.own_process ? "Own Process" : "Share Process")
        .boolean("Started", running)
        .str("StartMode", std::string(s.start_mode))
        .str("StartName", std::string(s.start_name))
        .str("State", std::string(s.state))
        .str("Status", "OK")
        .str("SystemCreationClassName", "Win32_ComputerSystem")
        .str("SystemName", m.cs_name)
        .num("TagId", 0)
        .num("WaitHint", 0);
  }
}

struct ProcCounters {
  double kernel, user, reads, writes, read_bytes, write_bytes, other_ops, other_bytes, faults;
};
ProcCounters proc_counters(const ProcessModel& p, const HostModel& m, double t) {
  ProcCounters c{};
  double alive = std::max(0.0, t - p.start_offset_s);
  double cpu = p.name == "System Idle Process" ? 0 : p.cpu_share;
  double busy = wave_integral(alive, cpu, 0.5, 200, static_cast<double>(p.pid % 7)) * 1e7;
  c.kernel = busy * 0.35;
  c.user = busy * 0.65;
  c.read_bytes = alive * p.io_read_bps;
  c.write_bytes = alive * p.io_write_bps;
  c.reads = c.read_bytes / 4096;
  c.writes = c.write_bytes / 4096;
  c.other_ops = alive * 2;
  c.other_bytes = alive * 100;
  c.faults = alive * (1 + static_cast<double>(p.working_set >> 24));
  if (p.pid == 0) c.kernel = (t * 1e7 * m.cpus) * 0.5;  // idle "kernel" time
  return c;
}

std::string short_os_name(const HostModel& m) {
  return std::string(catalogue().oses[static_cast<std::size_t>(m.os)].caption) +
         "|C:\\Windows|\\Device\\Harddisk0\\Partition2";
}

void gen_process(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_Process"), out);
  const double t = now - m.boot_unix;
  const std::string os_name = short_os_name(m);
  const std::string version = catalogue().oses[static_cast<std::size_t>(m.os)].version;
  for (const auto& p : m.processes) {
    auto c = proc_counters(p, m, t);
    b.begin()
        .str("Caption", std::string(p.name))
        .str("CreationClassName", "Win32_Process")
        .str("CSCreationClassName", "Win32_ComputerSystem")
        .str("CSName", m.cs_name)
        .str("Description", std::string(p.name))
        .str("Handle", std::to_string(p.pid))
        .num("HandleCount", p.handles)
        .num("KernelModeTime", u64(c.kernel))
        .str("Name", std::string(p.name))
        .str("OSCreationClassName", "Win32_OperatingSystem")
        .str("OSName", os_name)
        .num("OtherOperationCount", u64(c.other_ops))
        .num("OtherTransferCount", u64(c.other_bytes))
        .num("PageFaults", u64(c.faults))
        .num("PageFileUsage", kb(p.private_bytes))
        .num("ParentProcessId", p.ppid)
        .num("PeakPageFileUsage", kb(p.private_bytes) * 5 / 4)
        .num("PeakVirtualSize", p.virtual_bytes + (p.virtual_bytes >> 3))
        .num("PeakWorkingSetSize", kb(p.working_set) * 5 / 4)
        .num("Priority", p.priority)
        .num("PrivatePageCount", p.private_bytes)
        .num("ProcessId", p.pid)
        .num("QuotaNonPagedPoolUsage", 8 + p.handles / 50)
        .num("QuotaPagedPoolUsage", 50 + p.handles / 10)
        .num("QuotaPeakNonPagedPoolUsage", 10 + p.handles / 50)
        .num("QuotaPeakPagedPoolUsage", 60 + p.handles / 10)
        .num("ReadOperationCount", u64(c.reads))
        .num("ReadTransferCount", u64(c.read_bytes))
        .num("SessionId", static_cast<std::uint64_t>(p.session))
        .num("ThreadCount", p.threads)
        .num("UserModeTime", u64(c.user))
        .num("VirtualSize", p.virtual_bytes)
        .str("WindowsVersion", version)
        .num("WorkingSetSize", p.working_set)
        .num("WriteOperationCount", u64(c.writes))
        .num("WriteTransferCount", u64(c.write_bytes));
    if (p.pid > 4) {
      const std::string exe = p.exe_path.empty() ? "C:\\Windows\\system32\\" + std::string(p.name)
                                                 : std::string(p.exe_path);
      b.str("CommandLine", exe)
          .set("CreationDate", Value::datetime(xs_datetime(m.boot_unix + p.start_offset_s)))
          .str("ExecutablePath", exe)
          .num("MaximumWorkingSetSize", 1380)
          .num("MinimumWorkingSetSize", 200);
    }
  }
}

void gen_perf_process(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_PerfProc_Process"), out);
  const auto clock = perf_clock(m, now);
  std::unordered_map<std::string, int> seen;
  ProcCounters total{};
  std::uint64_t total_ws = 0, total_priv = 0, total_virt = 0, total_handles = 0, total_threads = 0;
  auto emit = [&](const std::string& name, std::uint32_t pid, std::uint32_t ppid,
                  const ProcCounters& c, double elapsed_s, std::uint64_t ws, std::uint64_t priv,
                  std::uint64_t virt, std::uint64_t handles, std::uint64_t threads,
                  std::uint64_t prio) {
    b.begin()
        .num("CreatingProcessID", ppid)
        .num("ElapsedTime", filetime(now - elapsed_s))
        .num("HandleCount", handles)
        .num("IDProcess", pid)
        .num("IODataBytesPersec", u64(c.read_bytes + c.write_bytes))
        .num("IODataOperationsPersec", u64(c.reads + c.writes))
        .num("IOOtherBytesPersec", u64(c.other_bytes))
        .num("IOOtherOperationsPersec", u64(c.other_ops))
        .num("IOReadBytesPersec", u64(c.read_bytes))
        .num("IOReadOperationsPersec", u64(c.reads))
        .num("IOWriteBytesPersec", u64(c.write_bytes))
        .num("IOWriteOperationsPersec", u64(c.writes))
        .str("Name", name)
        .num("PageFaultsPersec", u64(c.faults))
        .num("PageFileBytes", priv)
        .num("PageFileBytesPeak", priv * 5 / 4)
        .num("PercentPrivilegedTime", u64(c.kernel))
        .num("PercentProcessorTime", u64(c.kernel + c.user))
        .num("PercentUserTime", u64(c.user))
        .num("PoolNonpagedBytes", handles * 64)
        .num("PoolPagedBytes", handles * 512)
        .num("PriorityBase", prio)
        .num("PrivateBytes", priv)
        .num("ThreadCount", threads)
        .num("VirtualBytes", virt)
        .num("VirtualBytesPeak", virt + (virt >> 3))
        .num("WorkingSet", ws)
        .num("WorkingSetPeak", ws * 5 / 4)
        .num("WorkingSetPrivate", ws / 2);
    perf_common(b, clock);
    // Process counters use the 100ns clock as their object timer (ElapsedTime base).
    auto& v = out.back().values;
    const auto& d = cls("Win32_PerfRawData_PerfProc_Process");
    v[static_cast<std::size_t>(d.exact("Frequency_Object"))] = Value::num(10000000);
    v[static_cast<std::size_t>(d.exact("Timestamp_Object"))] = Value::num(clock.sys100ns);
  };
  for (const auto& p : m.processes) {
    auto c = proc_counters(p, m, clock.t);
    std::string name;
    if (p.pid == 0) {
      name = "Idle";
    } else {
      name = std::string(p.name.ends_with(".exe") ? p.name.substr(0, p.name.size() - 4) : p.name);
      int n = seen[name]++;
      if (n > 0) name += "#" + std::to_string(n);
    }
    double elapsed = p.pid <= 4 ? clock.t : std::max(0.0, clock.t - p.start_offset_s);
    emit(name, p.pid, p.ppid, c, elapsed, p.working_set, p.private_bytes, p.virtual_bytes,
         p.handles, p.threads, p.priority);
    total.kernel += c.kernel, total.user += c.user, total.reads += c.reads,
        total.writes += c.writes;
    total.read_bytes += c.read_bytes, total.write_bytes += c.write_bytes,
        total.other_ops += c.other_ops;
    total.other_bytes += c.other_bytes, total.faults += c.faults;
    total_ws += p.working_set, total_priv += p.private_bytes, total_virt += p.virtual_bytes;
    total_handles += p.handles, total_threads += p.threads;
  }
  emit("_Total", 0, 0, total, clock.t, total_ws, total_priv, total_virt, total_handles,
       total_threads, 0);
}

void gen_pagefile(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PageFileUsage"), out);
  const double t = now - m.boot_unix;
  const std::uint64_t alloc_mb = m.pagefile_bytes >> 20;
  const std::uint64_t cur =
      u64(gauge(t, static_cast<double>(alloc_mb) * 0.1, 0.5, 3600, m.core_phase[0]));
  b.begin()
      .num("AllocatedBaseSize", alloc_mb)
      .str("Caption", "C:\\pagefile.sys")
      .num("CurrentUsage", cur)
      .str("Description", "C:\\pagefile.sys")
      .set("InstallDate", Value::datetime(xs_datetime(m.install_unix + 3600, false)))
      .str("Name", "C:\\pagefile.sys")
      .num("PeakUsage", std::max<std::uint64_t>(cur, alloc_mb / 4))
      .boolean("TempPageFile", false);
}

void gen_tcp(const HostModel& m, double now, std::vector<Instance>& out, bool v6) {
  Builder b(cls(v6 ? "Win32_PerfRawData_Tcpip_TCPv6" : "Win32_PerfRawData_Tcpip_TCPv4"), out);
  const auto c = perf_clock(m, now);
  const double t = c.t, ph = m.core_phase[0] + (v6 ? 1 : 0);
  const double scale = v6 ? 0.05 : 1.0;
  const double recv = wave_integral(t, 400 * scale, 0.5, 300, ph);
  const double sent = wave_integral(t, 350 * scale, 0.5, 300, ph);
  b.begin()
      .num("ConnectionFailures", u64(wave_integral(t, 0.01 * scale, 0.9, 900, ph)))
      .num("ConnectionsActive", u64(wave_integral(t, 0.2 * scale, 0.5, 900, ph)))
      .num("ConnectionsEstablished", u64(std::max(0.0, gauge(t, 40 * scale, 0.3, 600, ph))))
      .num("ConnectionsPassive", u64(wave_integral(t, 0.5 * scale, 0.5, 900, ph)))
      .num("ConnectionsReset", u64(wave_integral(t, 0.05 * scale, 0.9, 900, ph)))
      .num("SegmentsPersec", u64(recv) + u64(sent))
      .num("SegmentsReceivedPersec", u64(recv))
      .num("SegmentsRetransmittedPersec", u64(sent * 0.002))
      .num("SegmentsSentPersec", u64(sent));
  perf_common(b, c);
}
void gen_tcpv4(const HostModel& m, double now, std::vector<Instance>& out) {
  gen_tcp(m, now, out, false);
}
void gen_tcpv6(const HostModel& m, double now, std::vector<Instance>& out) {
  gen_tcp(m, now, out, true);
}

void gen_udp(const HostModel& m, double now, std::vector<Instance>& out, bool v6) {
  Builder b(cls(v6 ? "Win32_PerfRawData_Tcpip_UDPv6" : "Win32_PerfRawData_Tcpip_UDPv4"), out);
  const auto c = perf_clock(m, now);
  const double t = c.t, ph = m.core_phase[0] + (v6 ? 2 : 3);
  const double scale = v6 ? 0.1 : 1.0;
  const double recv = wave_integral(t, 120 * scale, 0.5, 300, ph);
  const double sent = wave_integral(t, 110 * scale, 0.5, 300, ph);
  const double no_port = wave_integral(t, 0.5 * scale, 0.8, 600, ph);
  b.begin()
      .num("DatagramsNoPortPersec", u64(no_port))
      .num("DatagramsPersec", u64(recv) + u64(sent))
      .num("DatagramsReceivedErrors", u64(recv * 1e-5))
      .num("DatagramsReceivedPersec", u64(recv))
      .num("DatagramsSentPersec", u64(sent));
  perf_common(b, c);
}
void gen_udpv4(const HostModel& m, double now, std::vector<Instance>& out) {
  gen_udp(m, now, out, false);
}
void gen_udpv6(const HostModel& m, double now, std::vector<Instance>& out) {
  gen_udp(m, now, out, true);
}

// File system cache (one instance, no Name). Hit-percent counters are
// PERF_SAMPLE_FRACTION: hits / _Base attempts, both cumulative.
void gen_perf_cache(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_PerfOS_Cache"), out);
  const auto c = perf_clock(m, now);
  const double t = c.t, ph = m.core_phase[0];
  const auto rate = [&](double base) { return u64(wave_integral(t, base, 0.4, 420, ph)); };
  const std::uint64_t copy_reads = rate(300), data_maps = rate(150), pin_reads = rate(40),
                      mdl_reads = rate(25), fast_reads = rate(200);
  b.begin()
      .num("AsyncCopyReadsPersec", copy_reads / 4)
      .num("AsyncDataMapsPersec", data_maps / 5)
      .num("AsyncFastReadsPersec", fast_reads / 6)
      .num("AsyncMDLReadsPersec", mdl_reads / 2)
      .num("AsyncPinReadsPersec", pin_reads / 8)
      .num("CopyReadHitsPercent", copy_reads * 97 / 100)
      .num("CopyReadHitsPercent_Base", copy_reads)
      .num("CopyReadsPersec", copy_reads)
      .num("DataFlushesPersec", rate(3))
      .num("DataFlushPagesPersec", rate(12))
      .num("DataMapHitsPercent", data_maps * 99 / 100)
      .num("DataMapHitsPercent_Base", data_maps)
      .num("DataMapPinsPersec", rate(30))
      .num("DataMapPinsPersec_Base", rate(30))
      .num("DataMapsPersec", data_maps)
      .num("DirtyPages", u64(std::max(0.0, gauge(t, 900, 0.6, 180, ph))))
      .num("DirtyPageThreshold", m.mem_bytes / 4096 / 8)
      .num("FastReadNotPossiblesPersec", rate(0.2))
      .num("FastReadResourceMissesPersec", rate(0.1))
      .num("FastReadsPersec", fast_reads)
      .num("LazyWriteFlushesPersec", rate(2))
      .num("LazyWritePagesPersec", rate(8))
      .num("MDLReadHitsPercent", mdl_reads * 90 / 100)
      .num("MDLReadHitsPercent_Base", mdl_reads)
      .num("MDLReadsPersec", mdl_reads)
      .num("PinReadHitsPercent", pin_reads * 99 / 100)
      .num("PinReadHitsPercent_Base", pin_reads)
      .num("PinReadsPersec", pin_reads)
      .num("ReadAheadsPersec", rate(15))
      .num("SyncCopyReadsPersec", copy_reads - copy_reads / 4)
      .num("SyncDataMapsPersec", data_maps - data_maps / 5)
      .num("SyncFastReadsPersec", fast_reads - fast_reads / 6)
      .num("SyncMDLReadsPersec", mdl_reads - mdl_reads / 2)
      .num("SyncPinReadsPersec", pin_reads - pin_reads / 8);
  perf_common(b, c);
}

// Win32_NetworkAdapter: the host's NICs (NetConnectionID = the "Ethernet" friendly name,
// NetConnectionStatus 2 = Connected) plus the WAN miniports Windows always lists, which
// have no connection ID and no MAC.
void gen_netadapter(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_NetworkAdapter"), out);
  int index = 0;
  for (const auto& mp : catalogue().miniports) {
    if (!mp.adapter) continue;
    const std::string& miniport = mp.description;
    b.begin()
        .str("Caption", "[0000000" + std::to_string(index) + "] " + miniport)
        .num("ConfigManagerErrorCode", 0)
        .boolean("ConfigManagerUserConfig", false)
        .str("CreationClassName", "Win32_NetworkAdapter")
        .str("Description", miniport)
        .str("DeviceID", std::to_string(index))
        .num("Index", static_cast<std::uint64_t>(index))
        .boolean("Installed", true)
        .num("InterfaceIndex", static_cast<std::uint64_t>(index + 2))
        .str("Manufacturer", "Microsoft")
        .num("MaxNumberControlled", 0)
        .str("Name", miniport)
        .boolean("PhysicalAdapter", false)
        .str("ProductName", miniport)
        .str("SystemCreationClassName", "Win32_ComputerSystem")
        .str("SystemName", m.cs_name);
    ++index;
  }
  // The second NIC of a multi-NIC host has its cable unplugged from the first day.
  for (std::size_t i = 0; i < m.nics.size(); ++i) {
    const auto& n = m.nics[i];
    const bool connected = i != 1;
    b.begin()
        .str("AdapterType", "Ethernet 802.3")
        .num("AdapterTypeId", 0)
        .num("Availability", 3)
        .str("Caption", "[000000" + std::to_string(n.index) + "] " + n.description)
        .num("ConfigManagerErrorCode", 0)
        .boolean("ConfigManagerUserConfig", false)
        .str("CreationClassName", "Win32_NetworkAdapter")
        .str("Description", n.description)
        .str("DeviceID", std::to_string(n.index))
        .str("GUID", n.guid)
        .num("Index", static_cast<std::uint64_t>(n.index))
        .boolean("Installed", true)
        .num("InterfaceIndex", static_cast<std::uint64_t>(n.interface_index))
        .str("MACAddress", n.mac)
        .str("Manufacturer", n.description.starts_with("Intel") ? "Intel Corporation"
                                                                : "Microsoft")
        .num("MaxNumberControlled", 0)
        .str("Name", n.description)
        .str("NetConnectionID", i == 0 ? "Ethernet" : "Ethernet " + std::to_string(i + 1))
        .num("NetConnectionStatus", connected ? 2 : 7)
        .boolean("NetEnabled", connected)
        .boolean("PhysicalAdapter", true)
        .str("PNPDeviceID", "PCI\\VEN_15AD&DEV_07B0&SUBSYS_07B015AD&REV_01\\FF56" +
                                std::to_string(n.index))
        .boolean("PowerManagementSupported", false)
        .str("ProductName", n.description)
        .str("ServiceName", n.service_name)
        // Speed is the link speed in bit/s; Windows reports 2^63-1 with no link.
        .num("Speed", connected ? n.bandwidth_bps : 9223372036854775807ull)
        .str("SystemCreationClassName", "Win32_ComputerSystem")
        .str("SystemName", m.cs_name)
        .set("TimeOfLastReset", Value::datetime(xs_datetime(m.boot_unix, false)));
  }
  (void)now;
}

// Win32_UTCTime: the host's clock broken into fields (no sub-second part, as on Windows).
void gen_utctime(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_UTCTime"), out);
  const std::time_t secs = static_cast<std::time_t>(now + m.clock_offset_s);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  b.begin()
      .num("Day", static_cast<std::uint64_t>(tm.tm_mday))
      .num("DayOfWeek", static_cast<std::uint64_t>(tm.tm_wday))
      .num("Hour", static_cast<std::uint64_t>(tm.tm_hour))
      .num("Milliseconds", 0)
      .num("Minute", static_cast<std::uint64_t>(tm.tm_min))
      .num("Month", static_cast<std::uint64_t>(tm.tm_mon + 1))
      .num("Quarter", static_cast<std::uint64_t>(tm.tm_mon / 3 + 1))
      .num("Second", static_cast<std::uint64_t>(tm.tm_sec))
      .num("WeekInMonth", static_cast<std::uint64_t>((tm.tm_mday - 1) / 7 + 1))
      .num("Year", static_cast<std::uint64_t>(tm.tm_year + 1900));
}

// --- issue-12 collectors (time, clock, eventlog, files) -----------------------------------
// Win32_TimeZone of a host set to UTC (Win32_OperatingSystem.CurrentTimeZone is 0 too).
void gen_timezone(const HostModel&, double, std::vector<Instance>& out) {
  Builder b(cls("Win32_TimeZone"), out);
  b.begin()
      .set("Bias", Value::snum(0))
      .str("Caption", "(UTC) Coordinated Universal Time")
      .set("DaylightBias", Value::snum(0))
      .str("DaylightName", "Coordinated Universal Time")
      .str("Description", "(UTC) Coordinated Universal Time")
      .str("SettingID", "")
      .set("StandardBias", Value::snum(0))
      .str("StandardName", "Coordinated Universal Time");
}

// The "Windows Time Service" perf object (Server 2016+). Offsets and delays are microseconds;
// the NTP server counters only grow on hosts that serve time (here: every third host).
void gen_w32time(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_MicrosoftWindowsW32TimePerf_WindowsTimeService"), out);
  const auto c = perf_clock(m, now);
  const double ph = m.core_phase[0] + 11;
  const bool serves_time = m.seed % 3 != 1;
  b.begin()
      .str("Caption", "")
      .str("Description", "")
      .str("Name", "")
      .num("ClockFrequencyAdjustment", u64(gauge(c.t, 156250, 0.0003, 900, ph)))
      .num("ClockFrequencyAdjustmentPPB", u64(gauge(c.t, 300, 0.6, 900, ph)))
      .num("ComputedTimeOffset", u64(gauge(c.t, 800, 0.7, 1200, ph)))
      .num("NTPClientTimeSourceCount", 1)
      .num("NTPRoundtripDelay", u64(gauge(c.t, 2500, 0.5, 600, ph)))
      .num("NTPServerIncomingRequests", serves_time ? u64(wave_integral(c.t, 0.5, 0.5, 600, ph)) : 0)
      .num("NTPServerOutgoingResponses", serves_time ? u64(wave_integral(c.t, 0.5, 0.5, 600, ph)) : 0);
  perf_common(b, c);
}

// Win32_NTLogEvent: a fixed set of recurring events per host (catalogues.yml `events`), each
// every `interval` seconds
// at a per-host phase, for the last two days (older events are not generated, so a query
// without a TimeGenerated filter stays bounded at a few hundred rows). EventType: 1 error,
// 2 warning, 3 information, 4 audit success, 5 audit failure.
constexpr double kEventHistory = 2 * 86400.0;

const char* event_type_name(int type) {
  switch (type) {
    case 1: return "Error";
    case 2: return "Warning";
    case 3: return "Information";
    case 4: return "Audit Success";
    default: return "Audit Failure";
  }
}

void gen_ntlogevent(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_NTLogEvent"), out);
  const auto clock_now = now + m.clock_offset_s;  // TimeGenerated is the host's clock
  const auto& kinds = catalogue().events;
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    const EventKind& kind = kinds[k];
    const double phase = std::fmod(static_cast<double>((m.seed >> (k * 4)) % 1000) / 1000.0 *
                                       kind.interval,
                                   kind.interval);
    // Occurrence n happens at n * interval + phase; the newest is at or before now.
    const auto newest = static_cast<long long>(std::floor((clock_now - phase) / kind.interval));
    const auto count = static_cast<long long>(kEventHistory / kind.interval);
    for (long long n = newest; n > newest - count; --n) {
      const double at = static_cast<double>(n) * kind.interval + phase;
      b.begin()
          .num("Category", 0)
          .str("CategoryString", "")
          .str("ComputerName", m.cs_name)
          .num("EventCode", kind.code)
          .num("EventIdentifier", kind.code)
          .num("EventType", static_cast<std::uint64_t>(kind.event_type))
          .str("Logfile", kind.logfile)
          .str("Message", kind.message)
          .num("RecordNumber", static_cast<std::uint64_t>(n) * kinds.size() + k)
          .str("SourceName", kind.source)
          .set("TimeGenerated", Value::datetime(xs_datetime(at)))
          .set("TimeWritten", Value::datetime(xs_datetime(at)))
          .str("Type", event_type_name(kind.event_type))
          .set("User", Value::null());
    }
  }
}
// CIM_DataFile / CIM_Directory: a small per-host file tree on drive c:, for the files
// example (Centreon's files-date/files-size modes). Shapes from Microsoft's class docs
// (no capture of our own): Name is the full path in the file system's case, as in the
// capture quoted in Centreon's filesdate mode ("C:\Users\Administrator\NTUSER.DAT"); Drive
// "c:" and Path "\logs\app\" (both backslashes) as in the class docs' examples; FileName
// "app", Extension "log"; FileSize uint64 bytes; datetimes in the host's clock. Files are
// regenerated from the host seed and the time, so sizes and modification times move like
// real logs:
//   \logs\app\             app.log (written every minute since local midnight) and 3-9 days
//                          of rotated app-YYYYMMDD.log; some hosts keep a stale error.log
//   \logs\app\archive\     monthly app-YYYYMM.zip
//   \inetpub\logs\LogFiles\W3SVC1\  IIS's daily u_exYYMMDD.log, 14-30 days
//   \Windows\System32\     2,000 files (a few real names, then synthetic sim_NNNN.dll) so a
//                          query without a Path filter, which walks the whole drive on
//                          Windows, returns more rows than a sane max_rows.
struct SimFile {
  std::string path;  // "\logs\app\"
  std::string name;  // "app.log" (files) or "app" (directories)
  bool directory = false;
  std::uint64_t size = 0;
  double created = 0, modified = 0;
  bool system = false;
};

constexpr int kSystem32Files = 2000;

std::string yyyymmdd(double unix_s, bool two_digit_year) {
  const auto secs = static_cast<std::time_t>(std::floor(unix_s));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, two_digit_year ? "%y%m%d" : "%Y%m%d", &tm);
  return buf;
}

std::vector<SimFile> file_tree(const HostModel& m, double now) {
  std::vector<SimFile> out;
  const double clock_now = now + m.clock_offset_s;  // file times are the host's clock
  const double today = std::floor(clock_now / 86400) * 86400;
  Rng rng(m.seed ^ 0xF11E0001ull);
  auto dir = [&](std::string path, std::string name, double created, double modified) {
    out.push_back({std::move(path), std::move(name), true, 0, created, modified, false});
  };
  auto file = [&](std::string path, std::string name, std::uint64_t size, double created,
                  double modified) {
    out.push_back({std::move(path), std::move(name), false, size, created, modified, false});
  };

  // Application log: app.log written once a minute at a per-host second.
  const double app_rate = rng.uniform(200, 2000);  // bytes per second
  const double phase = static_cast<double>(rng.range(0, 59));
  const double last_write = std::floor((clock_now - phase) / 60) * 60 + phase;
  const int kept_days = rng.range(3, 9);
  const double app_created = today - kept_days * 86400.0;
  dir("\\", "logs", m.install_unix, app_created);
  dir("\\logs\\", "app", m.install_unix, today);
  file("\\logs\\app\\", "app.log", u64(app_rate * std::max(0.0, last_write - today)), today,
       std::max(today, last_write));
  for (int d = 1; d <= kept_days; ++d) {
    const double day = today - d * 86400.0;
    Rng day_rng(m.seed ^ static_cast<std::uint64_t>(day));
    file("\\logs\\app\\", "app-" + yyyymmdd(day, false) + ".log",
         u64(app_rate * 86400 * day_rng.uniform(0.8, 1.2)), day, day + 86400 - 60 + phase);
  }
  if (rng.chance(0.25)) {  // an error log nobody rotates, last written weeks ago
    const double at = today - rng.range(20, 60) * 86400.0 + rng.uniform(0, 86400);
    file("\\logs\\app\\", "error.log", static_cast<std::uint64_t>(rng.range(512, 65536)),
         m.install_unix, at);
  }
  dir("\\logs\\app\\", "archive", m.install_unix, today - 30 * 86400.0);
  for (int month = 1; month <= 3; ++month) {
    const double at = today - month * 30 * 86400.0;
    file("\\logs\\app\\archive\\", "app-" + yyyymmdd(at, false).substr(0, 6) + ".zip",
         u64(app_rate * 86400 * 30 * rng.uniform(0.05, 0.09)), at, at + 120);
  }

  // IIS: one W3C log per UTC day, the current one written continuously.
  const int iis_days = rng.range(14, 30);
  const double iis_rate = rng.uniform(50, 800);
  const std::string w3svc = "\\inetpub\\logs\\LogFiles\\W3SVC1\\";
  dir("\\", "inetpub", m.install_unix, m.install_unix);
  dir("\\inetpub\\", "logs", m.install_unix, m.install_unix);
  dir("\\inetpub\\logs\\", "LogFiles", m.install_unix, m.install_unix);
  dir("\\inetpub\\logs\\LogFiles\\", "W3SVC1", m.install_unix, today);
  for (int d = 0; d < iis_days; ++d) {
    const double day = today - d * 86400.0;
    const double modified = d == 0 ? clock_now - rng.uniform(0, 2) : day + 86399;
    Rng day_rng(m.seed ^ static_cast<std::uint64_t>(day) ^ 0x115ull);
    file(w3svc, "u_ex" + yyyymmdd(day, true) + ".log",
         u64(iis_rate * (modified - day) * day_rng.uniform(0.7, 1.3)), day, modified);
  }

  // System32: the bulk a whole-drive walk runs into.
  const auto& system32 = catalogue().system32_files;
  dir("\\", "Windows", m.install_unix, m.install_unix);
  dir("\\Windows\\", "System32", m.install_unix, m.install_unix);
  for (int i = 0; i < kSystem32Files; ++i) {
    char synthetic[24];
    std::snprintf(synthetic, sizeof synthetic, "sim_%04d.dll", i);
    const bool real = static_cast<std::size_t>(i) < system32.size();
    file("\\Windows\\System32\\", real ? system32[static_cast<std::size_t>(i)] : synthetic,
         static_cast<std::uint64_t>(16384 + (m.seed >> (i % 48)) % 2000000), m.install_unix,
         m.install_unix);
    out.back().system = true;
  }
  return out;
}

// "app-20261130.log" -> 8.3 alias "app-20~1.log"; names that fit 8.3 stay as they are.
std::string short_name(const std::string& name) {
  const auto dot = name.rfind('.');
  std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
  std::string ext = dot == std::string::npos ? "" : name.substr(dot + 1);
  if (stem.size() <= 8 && ext.size() <= 3) return name;
  return stem.substr(0, 6) + "~1" + (ext.empty() ? "" : "." + ext.substr(0, 3));
}

std::string file_type(const std::string& extension) {
  if (extension == "log" || extension == "txt") return "Text Document";
  if (extension == "zip") return "Compressed (zipped) Folder";
  if (extension == "exe") return "Application";
  if (extension == "dll") return "Application Extension";
  return extension.empty() ? "File" : common::to_lower(extension) + " File";
}

// The CIM_LogicalFile properties both classes share.
void logical_file(Builder& b, const HostModel& m, const SimFile& f) {
  std::string short_path = "C:";
  for (std::size_t start = 1; start < f.path.size();) {
    const auto end = f.path.find('\\', start);
    short_path += "\\" + short_name(f.path.substr(start, end - start));
    start = end + 1;
  }
  const std::string name = "C:" + f.path + f.name;
  const auto created = Value::datetime(xs_datetime(f.created));
  b.set("AccessMask", Value::num(1179817))  // read and execute: what a non-admin account sees
      .boolean("Archive", !f.directory)
      .str("Caption", name)
      .boolean("Compressed", false)
      .str("CreationClassName", "CIM_LogicalFile")
      .set("CreationDate", created)
      .str("CSCreationClassName", "Win32_ComputerSystem")
      .str("CSName", m.cs_name)
      .str("Description", name)
      .str("Drive", "c:")
      .str("EightDotThreeFileName", short_path + "\\" + short_name(f.name))
      .boolean("Encrypted", false)
      .str("FSCreationClassName", "Win32_FileSystem")
      .str("FSName", "NTFS")
      .boolean("Hidden", false)
      .set("InstallDate", created)
      .set("LastAccessed", Value::datetime(xs_datetime(f.modified)))
      .set("LastModified", Value::datetime(xs_datetime(f.modified)))
      .str("Name", name)
      .str("Path", f.path)
      .boolean("Readable", true)
      .str("Status", "OK")
      .boolean("System", f.system)
      .boolean("Writeable", true);
  // CompressionMethod, EncryptionMethod and InUseCount stay NULL, as Windows leaves them.
}

void gen_datafile(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("CIM_DataFile"), out);
  const std::string version =
      std::string(catalogue().oses[static_cast<std::size_t>(m.os)].version) + ".1";
  for (const SimFile& f : file_tree(m, now)) {
    if (f.directory) continue;
    const auto dot = f.name.rfind('.');
    const std::string extension = dot == std::string::npos ? "" : f.name.substr(dot + 1);
    b.begin();
    logical_file(b, m, f);
    b.str("Extension", extension)
        .str("FileName", dot == std::string::npos ? f.name : f.name.substr(0, dot))
        .num("FileSize", f.size)
        .str("FileType", file_type(extension));
    if (extension == "dll" || extension == "exe") {  // from the PE version resource
      b.str("Manufacturer", "Microsoft Corporation").str("Version", version);
    }
  }
}

void gen_directory(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("CIM_Directory"), out);
  for (const SimFile& f : file_tree(m, now)) {
    if (!f.directory) continue;
    b.begin();
    logical_file(b, m, f);
    b.str("Extension", "").str("FileName", f.name).str("FileType", "File Folder");
    // FileSize is NULL for directories.
  }
}
// --- end issue-12 collectors --------------------------------------------------------------

// A default SQL Server instance (perf classes MSSQLSERVER_*; a named instance would be
// MSSQLxxx_...). Every simulated host runs one, so the example collector has data.
void gen_mssql_general(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_MSSQLSERVER_SQLServerGeneralStatistics"), out);
  const auto c = perf_clock(m, now);
  const double t = c.t, ph = m.core_phase[0] + 5;
  b.begin()
      .num("ConnectionResetPersec", u64(wave_integral(t, 4, 0.5, 600, ph)))
      .num("LoginsPersec", u64(wave_integral(t, 2, 0.5, 600, ph)))
      .num("LogoutsPersec", u64(wave_integral(t, 2, 0.5, 600, ph)) - 1)
      .num("Processesblocked", u64(std::max(0.0, gauge(t, 0.4, 1.5, 300, ph))))
      .num("UserConnections", u64(std::max(1.0, gauge(t, 35, 0.4, 900, ph))));
  perf_common(b, c);
}

void gen_mssql_bufman(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_MSSQLSERVER_SQLServerBufferManager"), out);
  const auto c = perf_clock(m, now);
  const double t = c.t, ph = m.core_phase[0] + 6;
  const std::uint64_t target = m.mem_bytes / 2 / 8192;
  b.begin()
      // PERF_LARGE_RAW_FRACTION: hits and lookups of the recent window, not cumulative.
      .num("Buffercachehitratio", 997)
      .num("Buffercachehitratio_Base", 1000)
      .num("CheckpointpagesPersec", u64(wave_integral(t, 30, 0.8, 600, ph)))
      .num("Databasepages", target * 9 / 10)
      .num("LazywritesPersec", u64(wave_integral(t, 2, 0.8, 600, ph)))
      .num("Pagelifeexpectancy", u64(std::min(t, 3000.0 + gauge(t, 0, 600, 1800, ph))))
      .num("PagereadsPersec", u64(wave_integral(t, 80, 0.6, 600, ph)))
      .num("PagewritesPersec", u64(wave_integral(t, 40, 0.6, 600, ph)))
      .num("Targetpages", target);
  perf_common(b, c);
}

// ---- collectors/examples classes (IIS app pools, scheduled tasks, hotfixes) ----
// No Windows capture of these classes is at hand: property names and value shapes follow
// Microsoft's class documentation (perf counter types, MSFT_ScheduledTask's State
// enumeration, QuickFixEngineering's en-US InstalledOn string).

// IIS "APP_POOL_WAS" perf object: one instance per application pool plus _Total.
// CurrentApplicationPoolState: 1 Uninitialized .. 3 Running .. 5 Disabled .. 7 Delete
// Pending; the uptime counters are PERF_ELAPSED_TIME (start instant as a FILETIME in units
// of Frequency_Object).
void gen_iis_app_pools(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_PerfRawData_APPPOOLCountersProvider_APPPOOLWAS"), out);
  const auto c = perf_clock(m, now);
  Rng rng(m.seed ^ 0x11540001ull);
  struct Pool {
    std::string name;
    std::uint64_t state, workers, max_workers, recycles, failures;
    double started;
  };
  std::vector<Pool> pools;
  for (const char* name : {"DefaultAppPool", ".NET v4.5", ".NET v4.5 Classic", "ContosoWeb"}) {
    Pool p{name, 3, 1, 1, 0, 0, m.boot_unix + 60};
    // IIS's default periodic recycle: every 1,740 minutes (29 h).
    p.recycles = static_cast<std::uint64_t>(c.t / (1740 * 60.0));
    p.started = m.boot_unix + 60 + static_cast<double>(p.recycles) * 1740 * 60.0;
    if (p.name == "ContosoWeb") {
      p.max_workers = 2;
      p.workers = 1 + u64(std::max(0.0, gauge(c.t, 0.5, 1, 900, m.core_phase[0])));
      p.failures = static_cast<std::uint64_t>(rng.range(0, 3));
    }
    // About a third of the hosts keep the Classic pool stopped, as admins often do.
    if (p.name == ".NET v4.5 Classic" && rng.chance(0.35)) {
      p.state = 5;
      p.workers = 0;
    }
    pools.push_back(std::move(p));
  }
  Pool total{"_Total", 0, 0, 0, 0, 0, m.boot_unix + 60};
  for (const auto& p : pools) {
    total.workers += p.workers;
    total.max_workers += p.max_workers;
    total.recycles += p.recycles;
    total.failures += p.failures;
  }
  pools.push_back(total);
  for (const auto& p : pools) {
    b.begin()
        .str("Name", p.name)
        .num("CurrentApplicationPoolState", p.state)
        .num("CurrentApplicationPoolUptime", p.state == 3 ? filetime(p.started) : 0)
        .num("CurrentWorkerProcesses", p.workers)
        .num("MaximumWorkerProcesses", p.max_workers)
        .num("RecentWorkerProcessFailures", 0)
        .num("TimeSinceLastWorkerProcessFailure", p.failures ? filetime(p.started) : 0)
        .num("TotalApplicationPoolRecycles", p.recycles)
        .num("TotalApplicationPoolUptime", filetime(m.boot_unix + 60))
        .num("TotalWorkerProcessesCreated", p.recycles + p.failures + (p.state == 3 ? 1u : 0u))
        .num("TotalWorkerProcessFailures", p.failures)
        .num("TotalWorkerProcessPingFailures", 0)
        .num("TotalWorkerProcessShutdownFailures", 0)
        .num("TotalWorkerProcessStartupFailures", 0);
    perf_common(b, c);
    b.num("Frequency_Object", 10000000);
  }
}

// MSFT_ScheduledTask (root/Microsoft/Windows/TaskScheduler). State: 0 Unknown,
// 1 Disabled, 2 Queued, 3 Ready, 4 Running. The embedded-instance properties (Actions,
// Principal, Settings, Triggers) are not simulated.
void gen_scheduled_tasks(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("MSFT_ScheduledTask"), out);
  Rng rng(m.seed ^ 0x7A5C0001ull);
  struct Task {
    const char* path;
    const char* name;
    const char* author;
    std::uint64_t state;
  };
  // A nightly job that runs for the first ten minutes of every hour, so state changes.
  const bool backup_running = std::fmod(now, 3600.0) < 600.0;
  const std::vector<Task> tasks = {
      {"\\", "Contoso Cleanup", "CONTOSO\\svc-ops", rng.chance(0.3) ? 1u : 3u},
      {"\\Backup\\", "Nightly SQL backup", "CONTOSO\\svc-backup", backup_running ? 4u : 3u},
      {"\\Microsoft\\Windows\\Defrag\\", "ScheduledDefrag",
       "$(@%systemroot%\\system32\\defragsvc.dll,-801)", 3},
      {"\\Microsoft\\Windows\\Maintenance\\", "WinSAT", "Microsoft Corporation", 1},
      {"\\Microsoft\\Windows\\Server Manager\\", "ServerManager", "Microsoft Corporation", 3},
      {"\\Microsoft\\Windows\\Time Synchronization\\", "SynchronizeTime",
       "$(@%SystemRoot%\\system32\\w32time.dll,-202)", 3},
      {"\\Microsoft\\Windows\\UpdateOrchestrator\\", "Schedule Scan", "Microsoft Corporation", 3},
  };
  for (const auto& t : tasks) {
    b.begin()
        .str("Author", t.author)
        .str("TaskName", t.name)
        .str("TaskPath", t.path)
        .str("URI", std::string(t.path) + t.name)
        .num("State", t.state);
  }
}

// Win32_QuickFixEngineering: InstalledOn is a string in the en-US short date form
// (M/D/YYYY); InstallDate stays NULL on every Windows since Vista. Each host's newest
// update is 3 to 75 days old, so the hotfix-age example spans both sides of a threshold.
void gen_hotfixes(const HostModel& m, double now, std::vector<Instance>& out) {
  Builder b(cls("Win32_QuickFixEngineering"), out);
  Rng rng(m.seed ^ 0x40F10001ull);
  const long today = static_cast<long>(now / 86400);
  long day = today - rng.range(3, 75);
  const int count = rng.range(4, 8);
  unsigned kb = 5030000u + static_cast<unsigned>(rng.range(0, 9000));
  for (int i = 0; i < count; ++i) {
    const std::time_t secs = static_cast<std::time_t>(day) * 86400;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    const std::string id = "KB" + std::to_string(kb);
    b.begin()
        .str("Caption", "https://support.microsoft.com/help/" + std::to_string(kb))
        .str("CSName", m.cs_name)
        .str("Description", i % 3 == 0 ? "Update" : "Security Update")
        .str("FixComments", "")
        .str("HotFixID", id)
        .str("InstalledBy", "NT AUTHORITY\\SYSTEM")
        .str("InstalledOn", std::to_string(tm.tm_mon + 1) + "/" + std::to_string(tm.tm_mday) +
                                "/" + std::to_string(tm.tm_year + 1900))
        .str("ServicePackInEffect", "");
    day -= rng.range(20, 40);  // roughly monthly
    kb -= static_cast<unsigned>(rng.range(1000, 5000));
  }
}
// ---- end of collectors/examples classes ----

// The classes and their properties come from sim/data/classes.yml (embedded); the values
// from these generators, one per class.
struct Generator {
  std::string_view cls;
  ClassGenerator gen;
};

// A class's own property list: `like`'s (less `without`), then `properties`. Names
// resolve in any order; a chain longer than the file is circular.
std::vector<std::string> declared_properties(const YamlDoc& d,
                                             const std::map<std::string, YAML::Node>& by_name,
                                             const YAML::Node& node, const std::string& where,
                                             std::size_t depth) {
  std::vector<std::string> props;
  if (const YAML::Node like = node["like"]) {
    const auto name = d.scalar<std::string>(like, where + ".like");
    const auto base = by_name.find(name);
    if (base == by_name.end()) d.fail(like, where + ".like", "no class '" + name + "'");
    if (depth > by_name.size()) d.fail(like, where + ".like", "circular");
    props = declared_properties(d, by_name, base->second, "classes[" + name + "]", depth + 1);
    if (const YAML::Node without = node["without"]) {
      for (const auto& drop : d.strings(without, where + ".without")) {
        const auto it = std::find(props.begin(), props.end(), drop);
        if (it == props.end())
          d.fail(without, where + ".without", "'" + drop + "' is not in " + name);
        props.erase(it);
      }
    }
  } else if (node["without"]) {
    d.fail(node["without"], where + ".without", "needs like:");
  }
  if (const YAML::Node own = node["properties"]) {
    for (auto& p : d.strings(own, where + ".properties")) props.push_back(std::move(p));
  }
  return props;
}

std::vector<ClassDef> build_classes() {
  static constexpr Generator kGenerators[] = {
      {"Win32_OperatingSystem", gen_os},
      {"Win32_ComputerSystem", gen_cs},
      {"Win32_Processor", gen_processor},
      {"Win32_PerfRawData_PerfOS_Processor", gen_perf_processor},
      {"Win32_PerfRawData_Counters_ProcessorInformation", gen_perf_procinfo},
      {"Win32_PerfRawData_PerfOS_Memory", gen_perf_memory},
      {"Win32_PerfRawData_PerfOS_System", gen_perf_system},
      {"Win32_LogicalDisk", gen_logicaldisk},
      {"Win32_PerfRawData_PerfDisk_LogicalDisk", gen_perf_logicaldisk},
      {"Win32_PerfRawData_PerfDisk_PhysicalDisk", gen_perf_physicaldisk},
      {"Win32_PerfRawData_Tcpip_NetworkInterface", gen_perf_nic},
      {"Win32_NetworkAdapterConfiguration", gen_nicconfig},
      {"Win32_Service", gen_service},
      {"Win32_Process", gen_process},
      {"Win32_PerfRawData_PerfProc_Process", gen_perf_process},
      {"Win32_PageFileUsage", gen_pagefile},
      {"Win32_PerfRawData_Tcpip_TCPv4", gen_tcpv4},
      {"Win32_PerfRawData_Tcpip_TCPv6", gen_tcpv6},
      {"Win32_PerfRawData_Tcpip_UDPv4", gen_udpv4},
      {"Win32_PerfRawData_Tcpip_UDPv6", gen_udpv6},
      {"Win32_PerfRawData_PerfOS_Cache", gen_perf_cache},
      {"Win32_NetworkAdapter", gen_netadapter},
      {"Win32_PerfRawData_MSSQLSERVER_SQLServerGeneralStatistics", gen_mssql_general},
      {"Win32_PerfRawData_MSSQLSERVER_SQLServerBufferManager", gen_mssql_bufman},
      {"Win32_PerfRawData_APPPOOLCountersProvider_APPPOOLWAS", gen_iis_app_pools},
      {"MSFT_ScheduledTask", gen_scheduled_tasks},
      {"Win32_QuickFixEngineering", gen_hotfixes},
      {"Win32_UTCTime", gen_utctime},
      {"Win32_TimeZone", gen_timezone},
      {"Win32_PerfRawData_MicrosoftWindowsW32TimePerf_WindowsTimeService", gen_w32time},
      {"Win32_NTLogEvent", gen_ntlogevent},
      {"CIM_DataFile", gen_datafile},
      {"CIM_Directory", gen_directory},
  };
  const YamlDoc d("sim/data/classes.yml");
  const YAML::Node root = d.source().load(data::text(d.source().name()));
  d.check_keys(root, "top level", {"perf_common", "classes"});
  const auto perf_common = d.strings(root["perf_common"], "perf_common");
  const YAML::Node list = root["classes"];
  if (!list.IsSequence()) d.fail(list, "classes", "expected a list");
  std::map<std::string, YAML::Node> by_name;
  for (const auto& node : list) {
    d.check_keys(node, "classes[]", {"name", "namespace", "perf", "like", "without", "properties"});
    const auto name = d.scalar<std::string>(node["name"], "classes[].name");
    if (!by_name.emplace(name, node).second)
      d.fail(node["name"], "classes[]", "repeated class " + name);
  }
  std::vector<ClassDef> out;
  std::set<std::string, std::less<>> generated;
  for (const auto& node : list) {
    ClassDef def;
    def.name = d.scalar<std::string>(node["name"], "classes[].name");
    const std::string where = "classes[" + def.name + "]";
    def.properties = declared_properties(d, by_name, node, where, 0);
    if (node["perf"] && d.scalar<bool>(node["perf"], where + ".perf")) {
      def.properties.insert(def.properties.end(), perf_common.begin(), perf_common.end());
    }
    if (def.properties.empty()) d.fail(node, where, "no properties");
    // Windows renders properties in case-insensitive alphabetical order.
    std::sort(def.properties.begin(), def.properties.end(),
              [](const std::string& a, const std::string& b) {
                return common::to_lower(a) < common::to_lower(b);
              });
    for (std::size_t i = 0; i < def.properties.size(); ++i) {
      const std::string& prop = def.properties[i];
      if (!def.lower_index.emplace(common::to_lower(prop), static_cast<int>(i)).second)
        d.fail(node, where, "property " + prop + " listed twice");
      def.exact_index[prop] = static_cast<int>(i);
    }
    if (node["namespace"]) {
      def.wmi_namespace = d.scalar<std::string>(node["namespace"], where + ".namespace");
    }
    for (const auto& g : kGenerators) {
      if (g.cls == def.name) def.generate = g.gen;
    }
    if (def.generate == nullptr) d.fail(node["name"], where, "no generator in sim/inventory.cpp");
    generated.insert(def.name);
    out.push_back(std::move(def));
  }
  for (const auto& g : kGenerators) {
    if (!generated.contains(g.cls))
      throw std::logic_error("sim: generator for " + std::string(g.cls) + " has no class in " +
                             d.source().name());
  }
  return out;
}

const std::vector<ClassDef>& classes() {
  static const std::vector<ClassDef> all = build_classes();
  return all;
}

const ClassDef& cls(std::string_view name) {
  const ClassDef* d = find_class(name);
  if (d == nullptr) throw std::logic_error("sim: unknown class " + std::string(name));
  return *d;
}

}  // namespace

int ClassDef::find(std::string_view n) const {
  auto it = lower_index.find(common::to_lower(n));
  return it == lower_index.end() ? -1 : it->second;
}

int ClassDef::exact(std::string_view n) const {
  auto it = exact_index.find(std::string(n));
  return it == exact_index.end() ? -1 : it->second;
}

bool known_namespace(std::string_view ns) {
  return ns == "root/cimv2" || ns == "root/wmi" || ns == "root/microsoft/windows/taskscheduler";
}

const ClassDef* find_class(std::string_view name) {
  for (const auto& d : classes()) {
    if (common::iequals(d.name, name)) return &d;
  }
  return nullptr;
}

const ClassDef* find_class(std::string_view ns_lower, std::string_view name) {
  const ClassDef* d = find_class(name);
  return d != nullptr && common::to_lower(d->wmi_namespace) == ns_lower ? d : nullptr;
}

std::vector<std::string> class_names() {
  std::vector<std::string> out;
  for (const auto& d : classes()) out.push_back(d.name);
  return out;
}

std::uint64_t host_seed(std::string_view host_lower) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (char c : host_lower) {
    h ^= static_cast<unsigned char>(common::ascii_lower(c));
    h *= 1099511628211ull;
  }
  return h;
}

double now_unix_seconds() {
  using namespace std::chrono;
  return static_cast<double>(
             duration_cast<microseconds>(system_clock::now().time_since_epoch()).count()) /
         1e6;
}

namespace {

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - (a % b < 0 ? 1 : 0); }

std::string utc_text(std::time_t whole, const char* fraction) {
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf, n) + fraction + "Z";
}

}  // namespace

std::string xs_datetime(double unix_seconds, bool micro) {
  char f[16] = "";
  if (micro) {
    auto whole = static_cast<std::time_t>(std::floor(unix_seconds));
    double frac = unix_seconds - static_cast<double>(whole);
    std::snprintf(f, sizeof f, ".%06d", static_cast<int>(std::min(999999.0, frac * 1e6)));
    return utc_text(whole, f);
  }
  // Whole milliseconds, truncated like a Windows clock read ("20:27:39.762Z" in the Centreon
  // capture), counted in integer microseconds: the callers' times are microsecond clock reads
  // plus offsets, which llround recovers exactly. Truncating a double's fraction instead
  // (int(frac * 1e3)) lost a second millisecond about half the time, since k/1000 is rarely
  // exact in binary: the clock collector's offset then read up to 2 ms low.
  const std::int64_t ms = floor_div(std::llround(unix_seconds * 1e6), 1000);
  const std::int64_t millis = ms - floor_div(ms, 1000) * 1000;
  if (millis != 0) std::snprintf(f, sizeof f, ".%03d", static_cast<int>(millis));
  return utc_text(static_cast<std::time_t>(floor_div(ms, 1000)), f);
}

Inventory::Inventory(const std::vector<HostConfig>& overrides) {
  for (const auto& h : overrides) overrides_[h.name] = h;
  // Read the embedded data before threads start: a broken data file stops the start-up.
  (void)classes();
  (void)catalogue();
}

std::shared_ptr<const HostModel> Inventory::model(const std::string& host) {
  const std::string key = common::to_lower(host);
  {
    std::shared_lock lock(mutex_);
    auto it = models_.find(key);
    if (it != models_.end()) return it->second;
  }
  auto ov = overrides_.find(key);
  auto built = std::make_shared<const HostModel>(
      build_model(key, ov == overrides_.end() ? nullptr : &ov->second, now_unix_seconds()));
  std::unique_lock lock(mutex_);
  // A model is a few KB; bound the cache anyway so a host-name scan cannot exhaust memory.
  if (models_.size() >= 200000) models_.clear();
  auto [it, inserted] = models_.emplace(key, std::move(built));
  return it->second;
}

std::vector<Instance> Inventory::instances(const std::string& host, const ClassDef& c, double now) {
  auto m = model(host);
  std::vector<Instance> out;
  c.generate(*m, now, out);
  return out;
}

}  // namespace sim
