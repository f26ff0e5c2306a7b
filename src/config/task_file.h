// Where a task file is, as the store knows it, and the id a task file gets when it sets none.
//
// A store is shared by every task whose accounts file it sits beside, so ids must not collide
// between task files in different folders: a task file's default id comes from its place in the
// store's folder ("spring/task.toml" -> "spring-task"), which stays the same when the whole folder
// tree is moved. Pure functions of the two paths (nothing is read from disk); thread-safe.
#pragma once

#include <string>

namespace herald {

// The task file's place as the store records it: its path relative to the store's folder, with
// '/' between folders, when it is inside that folder (at any depth); its absolute path otherwise.
// Both paths are made absolute and normalised lexically (symbolic links are not followed).
std::string TaskFileInStore(const std::string& task_path, const std::string& store_file);

// The task file a store names with TaskFileInStore(), as a path on this machine.
std::string TaskFileFromStore(const std::string& stored, const std::string& store_file);

// The id of a task file that sets none, always a valid id (letters, digits, '-', '_', '.'; at
// most 128; not starting with '.'):
//  - inside the store's folder: its folders and its name without extension, joined by '-'
//    ("task.toml" -> "task", "mailings/spring/task.toml" -> "mailings-spring-task"); a byte that
//    cannot be in an id becomes '_', and then (or when the id would be too long) a short hash of
//    the place (8 hex digits) is appended ("Frühling/task.toml" -> "Fr__hling-task-" and the
//    hash), so ids of different places stay apart;
//  - outside it: the name without extension and a short hash of the absolute path ("task-" and
//    8 hex digits), unique but not stable when the file moves.
std::string DefaultTaskId(const std::string& task_path, const std::string& store_file);

}  // namespace herald
