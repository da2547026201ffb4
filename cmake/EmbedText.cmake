# Text files compiled into a library as C++ initializer entries {"<name>", R"<delim>(<text>)<delim>"},
# so the program reads no file at run time: collectors/builtin/*.yml and sim/data/*.yml.
# Globbed with CONFIGURE_DEPENDS and listed in CMAKE_CONFIGURE_DEPENDS: adding or editing a
# file re-runs the configure step, which regenerates the entries.
#
#   winrm_embed_text(<out_var> GLOB <pattern> DELIMITER <d> [PREFIX <p>] [STRIP_EXTENSION])
#
# <out_var> receives the entries (one a line, sorted by path), <out_var>_COUNT their number.
# An entry's name is PREFIX plus the file name (without its extension with STRIP_EXTENSION).
function(winrm_embed_text out_var)
  cmake_parse_arguments(ARG "STRIP_EXTENSION" "GLOB;DELIMITER;PREFIX" "" ${ARGN})
  file(GLOB files CONFIGURE_DEPENDS ${ARG_GLOB})
  list(SORT files)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${files})
  set(entries "")
  foreach(path IN LISTS files)
    if(ARG_STRIP_EXTENSION)
      get_filename_component(name ${path} NAME_WE)
    else()
      get_filename_component(name ${path} NAME)
    endif()
    file(READ ${path} text)
    string(FIND "${text}" ")${ARG_DELIMITER}\"" clash)
    if(NOT clash EQUAL -1)
      message(FATAL_ERROR "${path} contains the raw-string delimiter )${ARG_DELIMITER}\"")
    endif()
    string(APPEND entries
           "    {\"${ARG_PREFIX}${name}\", R\"${ARG_DELIMITER}(${text})${ARG_DELIMITER}\"},\n")
  endforeach()
  list(LENGTH files count)
  set(${out_var} "${entries}" PARENT_SCOPE)
  set(${out_var}_COUNT ${count} PARENT_SCOPE)
endfunction()
