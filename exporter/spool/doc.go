// Package spool is an ordered, bounded queue of records (webhook batches)
// kept in memory and, when a directory is given, also on disk, so that a
// receiver outage or an agent restart loses nothing until the disk bound is
// reached. Delivery is at least once: a record being delivered when the
// agent stops is delivered again after the restart.
//
// Every record is written to disk as it is pushed; the newest records also
// stay in memory while the memory bound allows, so a spool that keeps up is
// never read back. One consumer reads records in push order with Next and
// removes them with Commit; the position is kept in a cursor file. Files
// are only ever created inside the spool directory.
package spool
