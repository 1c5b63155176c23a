# One warnings set for our own targets (never for third-party code).
set(SFK_WARNINGS
    -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wwrite-strings -Wformat=2 -Wundef -Wno-unused-parameter)

function(sfk_target_warnings target)
  target_compile_options(${target} PRIVATE ${SFK_WARNINGS})
  if(SFK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# sfk_executable(name SOURCES...): a product binary linked against sfk_common.
function(sfk_executable name)
  add_executable(${name} ${ARGN})
  sfk_target_warnings(${name})
  target_link_libraries(${name} PRIVATE sfk_common)
endfunction()
