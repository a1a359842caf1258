# ardkit_add_plugin(<name> SOURCES <src>... [LIBRARIES <lib>...] [OUTPUT_DIRECTORY <dir>])
#
# Builds one ardkit plugin library: a MODULE library (dlopen only, never linked against) named
# <name>.so, linked to the shared ardkit core and LibTorch, with hidden symbols so that two plugin
# libraries cannot shadow each other's code. Used in this tree and, through find_package(ardkit),
# by plugins built outside it.
function(ardkit_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "ardkit_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  if(TARGET ardkit_core)
    target_link_libraries(${name} PRIVATE ardkit_core ${ARG_LIBRARIES})
  else()
    target_link_libraries(${name} PRIVATE ardkit::core ${ARG_LIBRARIES})
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  elseif(DEFINED ARDKIT_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARDKIT_PLUGIN_OUTPUT_DIR})
  endif()
  if(TARGET ardkit_pch)
    # In-tree: reuse the one precompiled LibTorch header instead of parsing torch.h per plugin.
    target_precompile_headers(${name} REUSE_FROM ardkit_pch)
  endif()
endfunction()
