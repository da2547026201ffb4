#include "wql.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>

#include "common/strings.h"

namespace sim::wql {
namespace {

using common::ascii_lower;
using common::iequals;

int icompare(std::string_view a, std::string_view b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    char x = ascii_lower(a[i]), y = ascii_lower(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

enum class Tok { kIdent, kString, kNumber, kOp, kLParen, kRParen, kComma, kStar, kEnd };

struct Token {
  Tok type;
  std::string text;
  std::size_t pos;
};

std::expected<std::vector<Token>, std::string> tokenize(std::string_view s) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      out.push_back({Tok::kIdent, std::string(s.substr(start, i - start)), start});
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               ((c == '-' || c == '+') && i + 1 < s.size() &&
                std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      ++i;
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
      out.push_back({Tok::kNumber, std::string(s.substr(start, i - start)), start});
    } else if (c == '\'' || c == '"') {
      std::string value;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          value += s[i + 1];
          i += 2;
        } else if (s[i] == c) {
          ++i;
          closed = true;
          break;
        } else {
          value += s[i++];
        }
      }
      if (!closed)
        return std::unexpected("unterminated string literal at offset " + std::to_string(start));
      out.push_back({Tok::kString, value, start});
    } else if (c == '(') {
      out.push_back({Tok::kLParen, "(", i++});
    } else if (c == ')') {
      out.push_back({Tok::kRParen, ")", i++});
    } else if (c == ',') {
      out.push_back({Tok::kComma, ",", i++});
    } else if (c == '*') {
      out.push_back({Tok::kStar, "*", i++});
    } else if (c == '=') {
      out.push_back({Tok::kOp, "=", i++});
    } else if (c == '<' || c == '>' || c == '!') {
      std::string op(1, c);
      ++i;
      if (i < s.size() && (s[i] == '=' || (c == '<' && s[i] == '>'))) op += s[i++];
      if (op == "!") return std::unexpected("unexpected '!' at offset " + std::to_string(start));
      out.push_back({Tok::kOp, op, start});
    } else {
      return std::unexpected(std::string("unexpected character '") + c + "' at offset " +
                             std::to_string(start));
    }
  }
  out.push_back({Tok::kEnd, "", s.size()});
  return out;
}

bool is_keyword(const Token& t, std::string_view kw) {
  return t.type == Tok::kIdent && iequals(t.text, kw);
}

bool is_reserved(const std::string& word) {
  static const char* const kWords[] = {"select", "from", "where", "and",  "or",   "not",
                                       "like",   "is",   "null",  "true", "false"};
  for (const char* w : kWords)
    if (iequals(word, w)) return true;
  return false;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : toks_(std::move(toks)) {}

  std::expected<Query, std::string> query() {
    Query q;
    if (!is_keyword(peek(), "select")) return error("expected SELECT");
    next();
    if (peek().type == Tok::kStar) {
      next();
      q.select_all = true;
    } else {
      for (;;) {
        const Token& t = peek();
        if (t.type != Tok::kIdent || is_reserved(t.text)) return error("expected a property name");
        std::string name = next().text;
        bool dup = std::any_of(q.properties.begin(), q.properties.end(),
                               [&](const std::string& p) { return iequals(p, name); });
        if (!dup) q.properties.push_back(name);
        if (peek().type != Tok::kComma) break;
        next();
      }
    }
    if (!is_keyword(peek(), "from")) return error("expected FROM");
    next();
    if (peek().type != Tok::kIdent || is_reserved(peek().text))
      return error("expected a class name");
    q.class_name = next().text;
    if (is_keyword(peek(), "where")) {
      next();
      auto e = or_expr();
      if (!e) return std::unexpected(e.error());
      q.where = std::move(*e);
    }
    if (peek().type != Tok::kEnd) return error("unexpected '" + peek().text + "'");
    return q;
  }

 private:
  using ExprResult = std::expected<std::unique_ptr<Expr>, std::string>;

  const Token& peek() const { return toks_[pos_]; }
  const Token& next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }

  std::unexpected<std::string> error(const std::string& what) const {
    return std::unexpected(what + " at offset " + std::to_string(peek().pos));
  }

  ExprResult or_expr() {
    auto lhs = and_expr();
    if (!lhs) return lhs;
    while (is_keyword(peek(), "or")) {
      next();
      auto rhs = and_expr();
      if (!rhs) return rhs;
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::kOr;
      e->lhs = std::move(*lhs);
      e->rhs = std::move(*rhs);
      lhs = std::move(e);
    }
    return lhs;
  }

  ExprResult and_expr() {
    auto lhs = not_expr();
    if (!lhs) return lhs;
    while (is_keyword(peek(), "and")) {
      next();
      auto rhs = not_expr();
      if (!rhs) return rhs;
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::kAnd;
      e->lhs = std::move(*lhs);
      e->rhs = std::move(*rhs);
      lhs = std::move(e);
    }
    return lhs;
  }

  ExprResult not_expr() {
    if (is_keyword(peek(), "not")) {
      next();
      auto operand = not_expr();
      if (!operand) return operand;
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::kNot;
      e->lhs = std::move(*operand);
      return e;
    }
    return primary();
  }

  std::expected<Literal, std::string> literal() {
    const Token& t = peek();
    Literal lit;
    if (t.type == Tok::kString) {
      lit.kind = Literal::Kind::kString;
      lit.text = t.text;
    } else if (t.type == Tok::kNumber) {
      lit.kind = Literal::Kind::kNumber;
      lit.text = t.text;
      char* end = nullptr;
      lit.number = std::strtold(t.text.c_str(), &end);
      if (end == nullptr || *end != '\0') return error("bad number '" + t.text + "'");
    } else if (is_keyword(t, "true") || is_keyword(t, "false")) {
      lit.kind = Literal::Kind::kBool;
      lit.boolean = is_keyword(t, "true");
      lit.text = lit.boolean ? "true" : "false";
    } else if (is_keyword(t, "null")) {
      lit.kind = Literal::Kind::kNull;
    } else {
      return error("expected a literal");
    }
    next();
    return lit;
  }

  static std::optional<CompareOp> compare_op(const std::string& s) {
    if (s == "=") return CompareOp::kEq;
    if (s == "<>" || s == "!=") return CompareOp::kNe;
    if (s == "<") return CompareOp::kLt;
    if (s == ">") return CompareOp::kGt;
    if (s == "<=") return CompareOp::kLe;
    if (s == ">=") return CompareOp::kGe;
    return std::nullopt;
  }

  static CompareOp mirror(CompareOp op) {
    switch (op) {
      case CompareOp::kLt:
        return CompareOp::kGt;
      case CompareOp::kGt:
        return CompareOp::kLt;
      case CompareOp::kLe:
        return CompareOp::kGe;
      case CompareOp::kGe:
        return CompareOp::kLe;
      default:
        return op;
    }
  }

  ExprResult primary() {
    if (peek().type == Tok::kLParen) {
      next();
      auto e = or_expr();
      if (!e) return e;
      if (peek().type != Tok::kRParen) return error("expected ')'");
      next();
      return e;
    }
    auto e = std::make_unique<Expr>();
    if (peek().type == Tok::kIdent && !is_reserved(peek().text)) {
      e->property = next().text;
      if (is_keyword(peek(), "is")) {
        next();
        bool negate = false;
        if (is_keyword(peek(), "not")) {
          next();
          negate = true;
        }
        if (!is_keyword(peek(), "null")) return error("expected NULL");
        next();
        e->kind = negate ? Expr::Kind::kIsNotNull : Expr::Kind::kIsNull;
        return e;
      }
      bool negate_like = false;
      if (is_keyword(peek(), "not") && pos_ + 1 < toks_.size() &&
          is_keyword(toks_[pos_ + 1], "like")) {
        next();
        negate_like = true;
      }
      if (is_keyword(peek(), "like")) {
        next();
        if (peek().type != Tok::kString) return error("expected a string after LIKE");
        e->kind = Expr::Kind::kLike;
        e->literal.kind = Literal::Kind::kString;
        e->literal.text = next().text;
        if (negate_like) {
          auto n = std::make_unique<Expr>();
          n->kind = Expr::Kind::kNot;
          n->lhs = std::move(e);
          return n;
        }
        return e;
      }
      if (peek().type != Tok::kOp) return error("expected a comparison operator");
      e->kind = Expr::Kind::kCompare;
      e->op = *compare_op(next().text);
      auto lit = literal();
      if (!lit) return std::unexpected(lit.error());
      e->literal = std::move(*lit);
      return normalise_null(std::move(e));
    }
    // literal op property
    auto lit = literal();
    if (!lit) return std::unexpected(lit.error());
    if (peek().type != Tok::kOp) return error("expected a comparison operator");
    const CompareOp op = *compare_op(next().text);
    if (peek().type != Tok::kIdent || is_reserved(peek().text))
      return error("expected a property name");
    e->kind = Expr::Kind::kCompare;
    e->property = next().text;
    e->op = mirror(op);
    e->literal = std::move(*lit);
    return normalise_null(std::move(e));
  }

  // WMI accepts "Prop = NULL" / "Prop <> NULL" as IS [NOT] NULL.
  static std::unique_ptr<Expr> normalise_null(std::unique_ptr<Expr> e) {
    if (e->literal.kind == Literal::Kind::kNull) {
      if (e->op == CompareOp::kEq) e->kind = Expr::Kind::kIsNull;
      if (e->op == CompareOp::kNe) e->kind = Expr::Kind::kIsNotNull;
    }
    return e;
  }

  std::vector<Token> toks_;
  std::size_t pos_ = 0;
};

bool parse_number(const std::string& s, long double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtold(s.c_str(), &end);
  return end != nullptr && *end == '\0';
}

bool apply(CompareOp op, int cmp) {
  switch (op) {
    case CompareOp::kEq:
      return cmp == 0;
    case CompareOp::kNe:
      return cmp != 0;
    case CompareOp::kLt:
      return cmp < 0;
    case CompareOp::kGt:
      return cmp > 0;
    case CompareOp::kLe:
      return cmp <= 0;
    case CompareOp::kGe:
      return cmp >= 0;
  }
  return false;
}

// Unix seconds of a DMTF datetime ("20261201204500.000000+000", offset in minutes) or an
// xs:dateTime ("2026-12-01T20:45:00.5Z", "...+01:00"), as WMI compares datetimes.
std::optional<long double> datetime_seconds(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  long double frac = 0;
  int offset_minutes = 0;
  if (text.size() == 25 && text[14] == '.' && (text[21] == '+' || text[21] == '-')) {
    if (std::sscanf(text.c_str(), "%4d%2d%2d%2d%2d%2d", &y, &mo, &d, &h, &mi, &sec) != 6) {
      return std::nullopt;
    }
    frac = std::strtold(text.substr(14, 7).c_str(), nullptr);
    offset_minutes = std::atoi(text.substr(22, 3).c_str()) * (text[21] == '-' ? -1 : 1);
  } else {
    int consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
                    &consumed) != 6) {
      return std::nullopt;
    }
    std::size_t pos = static_cast<std::size_t>(consumed);
    if (pos < text.size() && text[pos] == '.') {
      const std::size_t end = text.find_first_not_of("0123456789", pos + 1);
      frac = std::strtold(text.substr(pos, end - pos).c_str(), nullptr);
      pos = end == std::string::npos ? text.size() : end;
    }
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      int oh = 0, om = 0;
      if (std::sscanf(text.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
      offset_minutes = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
    }
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<long double>(timegm(&tm)) + frac - offset_minutes * 60.0L;
}

bool compare_item(const std::string& item, ValueKind kind, const Expr& e) {
  const Literal& lit = e.literal;
  if (lit.kind == Literal::Kind::kNull) return false;
  if (kind == ValueKind::kDatetime && lit.kind == Literal::Kind::kString) {
    const auto v = datetime_seconds(item);
    const auto l = datetime_seconds(lit.text);
    if (v && l) return apply(e.op, *v == *l ? 0 : (*v < *l ? -1 : 1));
  }
  if (kind == ValueKind::kBool) {
    bool v = item == "true";
    bool l;
    if (lit.kind == Literal::Kind::kBool) {
      l = lit.boolean;
    } else if (lit.kind == Literal::Kind::kNumber) {
      l = lit.number != 0;
    } else {
      l = iequals(lit.text, "true");
    }
    return apply(e.op, v == l ? 0 : (v < l ? -1 : 1));
  }
  if (kind == ValueKind::kNumber) {
    long double v, l;
    if (parse_number(item, v) &&
        (lit.kind == Literal::Kind::kNumber ? (l = lit.number, true) : parse_number(lit.text, l))) {
      return apply(e.op, v == l ? 0 : (v < l ? -1 : 1));
    }
  }
  return apply(e.op, icompare(item, lit.text));
}

}  // namespace

std::expected<Query, std::string> parse(std::string_view text) {
  auto toks = tokenize(text);
  if (!toks) return std::unexpected(toks.error());
  Parser p(std::move(*toks));
  return p.query();
}

void collect_properties(const Expr& expr, std::vector<std::string>& out) {
  if (!expr.property.empty()) out.push_back(expr.property);
  if (expr.lhs) collect_properties(*expr.lhs, out);
  if (expr.rhs) collect_properties(*expr.rhs, out);
}

bool like_match(std::string_view text, std::string_view pat) {
  // Iterative matcher with backtracking on the last '%'.
  std::size_t t = 0, p = 0, star_p = std::string_view::npos, star_t = 0;
  auto match_one = [&](std::size_t& pi, char c) -> bool {
    if (pat[pi] == '_') {
      ++pi;
      return true;
    }
    if (pat[pi] == '[') {
      std::size_t close = pat.find(']', pi + 1);
      if (close != std::string_view::npos && close > pi + 1) {
        std::string_view set = pat.substr(pi + 1, close - pi - 1);
        bool negate = set.front() == '^';
        if (negate) set.remove_prefix(1);
        bool found = false;
        const char lc = ascii_lower(c);
        for (std::size_t i = 0; i < set.size(); ++i) {
          if (i + 2 < set.size() && set[i + 1] == '-') {
            if (lc >= ascii_lower(set[i]) && lc <= ascii_lower(set[i + 2])) found = true;
            i += 2;
          } else if (ascii_lower(set[i]) == lc) {
            found = true;
          }
        }
        pi = close + 1;
        return found != negate;
      }
    }
    bool ok = ascii_lower(pat[pi]) == ascii_lower(c);
    ++pi;
    return ok;
  };
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '%') {
      star_p = p++;
      star_t = t;
      continue;
    }
    std::size_t pi = p;
    if (p < pat.size() && match_one(pi, text[t])) {
      p = pi;
      ++t;
      continue;
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pat.size() && pat[p] == '%') ++p;
  return p == pat.size();
}

bool evaluate(const Expr& e, const Lookup& lookup) {
  switch (e.kind) {
    case Expr::Kind::kAnd:
      return evaluate(*e.lhs, lookup) && evaluate(*e.rhs, lookup);
    case Expr::Kind::kOr:
      return evaluate(*e.lhs, lookup) || evaluate(*e.rhs, lookup);
    case Expr::Kind::kNot:
      return !evaluate(*e.lhs, lookup);
    case Expr::Kind::kIsNull: {
      const Value* v = lookup(e.property);
      return v == nullptr || v->is_null();
    }
    case Expr::Kind::kIsNotNull: {
      const Value* v = lookup(e.property);
      return v != nullptr && !v->is_null();
    }
    case Expr::Kind::kLike: {
      const Value* v = lookup(e.property);
      if (v == nullptr || v->is_null()) return false;
      return std::any_of(v->items.begin(), v->items.end(),
                         [&](const std::string& item) { return like_match(item, e.literal.text); });
    }
    case Expr::Kind::kCompare: {
      const Value* v = lookup(e.property);
      if (v == nullptr || v->is_null()) return false;
      return std::any_of(v->items.begin(), v->items.end(),
                         [&](const std::string& item) { return compare_item(item, v->kind, e); });
    }
  }
  return false;
}

}  // namespace sim::wql
