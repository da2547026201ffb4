// A collector turns the rows of one or more WQL queries into metric families. It does
// no I/O and reads no clock: the daemon runs the queries and hands over the rows.
#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "collectors/metric.h"
#include "winrm/row.h"

namespace collectors {

struct Query {
  std::string wmi_namespace = "root/cimv2";
  std::string wql;  // explicit property lists for built-ins, never SELECT *
  // `refresh:` how long the daemon may reuse the query's rows for the target's next polls
  // instead of sending it again (data that changes only on a reboot or a config change);
  // 0: sent at every poll. Collectors only carry the value: the daemon keeps the rows.
  std::chrono::milliseconds refresh{0};
};

class Collector {
 public:
  virtual ~Collector() = default;
  virtual const std::string& name() const = 0;
  virtual const std::vector<Query>& queries() const = 0;
  // rows[i] holds the result of queries()[i]. Error text describes bad data.
  virtual std::expected<Families, std::string> transform(
      const std::vector<std::vector<winrm::Row>>& rows) const = 0;
  // Hands back a result of transform() once it is used: the next transform of this collector
  // on the calling thread reuses its storage (names, sample and label buffers) instead of
  // allocating it again. Optional; the default frees it.
  virtual void recycle(Families families) const { (void)families; }
};

using CollectorPtr = std::shared_ptr<const Collector>;

}  // namespace collectors
