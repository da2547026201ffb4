// Independent transcoding for the charset tests: glibc's iconv(3), not our decoder.
#pragma once

#include <doctest/doctest.h>
#include <iconv.h>

#include <string>
#include <string_view>

// Transcodes valid UTF-8 with iconv(3); `to` is e.g. "UTF-16LE".
inline std::string iconv_from_utf8(std::string_view text, const char* to) {
  iconv_t cd = iconv_open(to, "UTF-8");
  REQUIRE(cd != reinterpret_cast<iconv_t>(-1));
  std::string out(text.size() * 4 + 4, '\0');
  char* in_ptr = const_cast<char*>(text.data());
  std::size_t in_left = text.size();
  char* out_ptr = out.data();
  std::size_t out_left = out.size();
  const std::size_t rc = iconv(cd, &in_ptr, &in_left, &out_ptr, &out_left);
  iconv_close(cd);
  REQUIRE(rc != static_cast<std::size_t>(-1));
  REQUIRE(in_left == 0);
  out.resize(out.size() - out_left);
  return out;
}
