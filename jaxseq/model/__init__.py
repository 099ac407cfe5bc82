"""Model: GRU and LSTM cells (`cells`), the attentions and how the decoder wires each one
(`attention`), and the encoder and attention decoder, written for one sentence (`seq2seq`)."""
