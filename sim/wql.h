// A small WQL parser/evaluator: SELECT * | prop[, prop...] FROM Class [WHERE expr].
// Keywords and property names are case-insensitive, like WMI.
#pragma once
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "value.h"

namespace sim::wql {

struct Literal {
  enum class Kind { kString, kNumber, kBool, kNull };
  Kind kind = Kind::kNull;
  std::string text;  // string value (unescaped) or number text
  long double number = 0;
  bool boolean = false;
};

enum class CompareOp { kEq, kNe, kLt, kGt, kLe, kGe };

struct Expr {
  enum class Kind { kAnd, kOr, kNot, kCompare, kLike, kIsNull, kIsNotNull };
  Kind kind = Kind::kCompare;
  std::string property;  // for kCompare/kLike/kIs*
  CompareOp op = CompareOp::kEq;
  Literal literal;
  std::unique_ptr<Expr> lhs;  // kAnd/kOr/kNot(operand)
  std::unique_ptr<Expr> rhs;
};

struct Query {
  bool select_all = false;
  std::vector<std::string> properties;  // as written in the query, duplicates removed
  std::string class_name;
  std::unique_ptr<Expr> where;  // null when there is no WHERE clause
};

// Returns the query or a human-readable parse error.
std::expected<Query, std::string> parse(std::string_view text);

// Every property name the WHERE clause references (for validation against the class).
void collect_properties(const Expr& expr, std::vector<std::string>& out);

// Looks a property up by name (case-insensitively); nullptr when the class lacks it.
using Lookup = std::function<const Value*(const std::string& name)>;

// WMI semantics: comparisons with NULL are false, strings compare case-insensitively,
// numbers numerically, LIKE supports % _ [set] [^set].
bool evaluate(const Expr& expr, const Lookup& lookup);

bool like_match(std::string_view text, std::string_view pattern);

}  // namespace sim::wql
