// Package spool is an ordered, bounded queue of records (webhook batches)
// kept in memory and, when a directory is given, also on disk, so that a
// receiver outage or an agent restart loses nothing until the disk bound is
// reached. Delivery is at least once: a record being delivered when the
// agent stops is delivered again after the restart.
//
// Records stay in memory while the memory bound allows; once it is full,
// new records go to disk until the backlog there is delivered, so a spool
// that keeps up never touches the disk. Close writes the records held in
// memory to disk in front of the others, so a restart resumes in order; a
// crash loses the records that were only in memory. One consumer reads
// records in push order with Next and removes them with Commit; the disk
// position is kept in a cursor file. Files are only ever created inside the
// spool directory.
package spool
