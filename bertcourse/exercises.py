"""Exercise checkers for the lessons: the learner writes a function, a checker compares it with the
package's own on real inputs and says what differs."""
