mod checker;
mod crosscheck;
