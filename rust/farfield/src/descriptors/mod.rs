//! Local density expansion, power spectrum, Clebsch-Gordan products, triplets.
