"""Decoding: the decoder loops for one sentence (`decode`: teacher-forced, greedy, sampling,
prefixes), beam search (`beam_search`) and its lexical constraints (`constraints`), one model
or an ensemble behind one step (`ensemble`), fixed-shape batches (`batching`), word
alignments (`alignment`), a trained workdir restored for inference (`trained`), the scores of
a split (`evaluation`), and the options of a decoding call (`options`)."""
